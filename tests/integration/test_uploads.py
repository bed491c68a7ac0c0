"""The three ways in, against the real S3 server, all ending in one verified completion."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.support.assets import (
    MIB,
    chunks,
    create_asset,
    declare,
    put_direct,
    put_proxied,
    upload_simple,
)
from tests.support.identity import register_studio
from tests.support.media import padded


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as storage:
        return await storage.get(url)


@pytest.fixture
async def studio(http):
    return await register_studio(http, roles=("artist", "producer"))


async def versions_of(http, headers, asset_id) -> list[dict]:
    response = await http.get(f"/api/v1/assets/{asset_id}/versions", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_simple_upload_records_a_verified_version(http, studio, mp4_bytes, db):
    asset = await create_asset(http, studio.artist.headers)
    response = await upload_simple(http, studio.artist.headers, asset["id"], mp4_bytes)
    assert response.status_code == 201, response.text
    version = response.json()
    assert version["number"] == 1 and version["size"] == len(mp4_bytes)
    assert version["sha256"] == hashlib.sha256(mp4_bytes).hexdigest()
    assert version["content_type"] == "video/mp4"
    link = await http.get(f"/api/v1/assets/{asset['id']}/versions/1/download",
                          headers=studio.artist.headers)
    assert link.status_code == 200
    downloaded = await fetch(link.json()["url"])
    assert downloaded.status_code == 200 and downloaded.content == mp4_bytes
    events = await db["events"].find({"studio_id": studio.studio_id,
                                      "type": "asset.version_created"}).to_list()
    assert [e["data"]["version"]["number"] for e in events] == [1]
    request = await db["preview_requests"].find_one({"asset_id": asset["id"]})
    # The upload woke the dispatcher, which may already have made the preview job.
    assert request["state"] in ("pending", "claimed", "adopted")
    assert request["family"] == "video"


async def test_direct_multipart_upload(http, studio, mp4_bytes):
    asset = await create_asset(http, studio.artist.headers)
    data = padded(mp4_bytes, 11 * MIB)
    session = await declare(http, studio.artist.headers, asset["id"], data)
    assert session["part_count"] == 3 and len(session["part_urls"]) == 3
    parts = await put_direct(session, data)
    done = await http.post(f"/api/v1/uploads/{session['id']}/complete",
                           json={"parts": parts}, headers=studio.artist.headers)
    assert done.status_code == 201, done.text
    assert done.json()["size"] == len(data) and done.json()["number"] == 1
    again = await http.post(f"/api/v1/uploads/{session['id']}/complete",
                            headers=studio.artist.headers)
    assert again.status_code == 409  # completing twice never makes a second version
    assert len(await versions_of(http, studio.artist.headers, asset["id"])) == 1


async def test_proxied_upload_resumes_after_an_interruption(http, studio, mp4_bytes):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    data = padded(mp4_bytes, 12 * MIB)
    session = await declare(http, headers, asset["id"], data)
    pieces = chunks(data, session["part_size"])
    assert (await put_proxied(http, headers, session["id"], 1, pieces[0])).status_code == 200
    # The connection drops in the middle of part 2: storage keeps nothing of it.
    with pytest.raises((httpx.HTTPError, ConnectionError)):
        async def broken():
            yield pieces[1][: MIB]
            raise ConnectionError("cable pulled")
        await http.put(f"/api/v1/uploads/{session['id']}/parts/2", content=broken(),
                       headers={**headers, "Content-Type": "application/octet-stream"})
    status = (await http.get(f"/api/v1/uploads/{session['id']}", headers=headers)).json()
    assert [p["part"] for p in status["parts"]] == [1]
    assert status["missing_parts"] == [2, 3]
    for number in status["missing_parts"]:
        response = await put_proxied(http, headers, session["id"], number, pieces[number - 1])
        assert response.status_code == 200, response.text
    done = await http.post(f"/api/v1/uploads/{session['id']}/complete", headers=headers)
    assert done.status_code == 201, done.text
    link = (await http.get(f"/api/v1/assets/{asset['id']}/versions/1/download",
                           headers=headers)).json()["url"]
    stored = (await fetch(link)).content
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_proxied_part_of_the_wrong_size_is_refused(http, studio, mp4_bytes):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    data = padded(mp4_bytes, 6 * MIB)
    session = await declare(http, headers, asset["id"], data)
    too_big = await put_proxied(http, headers, session["id"], 1, data[: 5 * MIB] + b"x")
    assert too_big.status_code == 413
    too_small = await put_proxied(http, headers, session["id"], 2, b"tiny")
    assert too_small.status_code == 422
    no_such = await put_proxied(http, headers, session["id"], 3, b"x")
    assert no_such.status_code == 422 and no_such.json()["error"]["code"] == "invalid_part"


async def _completion_refused(http, headers, upload_id, parts=None) -> dict:
    body = {"parts": parts} if parts is not None else None
    response = await http.post(f"/api/v1/uploads/{upload_id}/complete", json=body,
                               headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "parts_rejected"
    return response.json()["error"]


async def test_completion_rejects_missing_reordered_and_foreign_parts(http, studio, mp4_bytes):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    data = padded(mp4_bytes, 11 * MIB)
    session = await declare(http, headers, asset["id"], data)
    sent = await put_direct(session, data, only={1, 3})
    error = await _completion_refused(http, headers, session["id"])
    assert error["details"][0]["missing"] == [2]
    sent += await put_direct(session, data, only={2})
    sent.sort(key=lambda p: p["part"])
    await _completion_refused(http, headers, session["id"], list(reversed(sent)))
    other_data = padded(mp4_bytes, 11 * MIB)  # same size, other bytes: other ETags
    other = await declare(http, headers, asset["id"], other_data)
    foreign = await put_direct(other, other_data, only={2})
    await _completion_refused(http, headers, session["id"], [sent[0], foreign[0], sent[2]])
    assert await versions_of(http, headers, asset["id"]) == []
    done = await http.post(f"/api/v1/uploads/{session['id']}/complete",
                           json={"parts": sent}, headers=headers)
    assert done.status_code == 201, done.text  # the client fixed its list: it completes


async def test_wrong_sha256_leaves_no_version_and_no_object(http, studio, mp4_bytes, db):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    data = padded(mp4_bytes, 6 * MIB)
    session = await declare(http, headers, asset["id"], data, sha256="0" * 64)
    await put_direct(session, data)
    response = await http.post(f"/api/v1/uploads/{session['id']}/complete", headers=headers)
    assert response.status_code == 422 and response.json()["error"]["code"] == "sha256_mismatch"
    assert await versions_of(http, headers, asset["id"]) == []
    record = await db["uploads"].find_one({"_id": session["id"]})
    assert record["state"] == "rejected"
    status = (await http.get(f"/api/v1/uploads/{session['id']}", headers=headers)).json()
    assert status["state"] == "rejected"


async def test_bytes_that_contradict_the_declared_type_are_415(http, studio, mp4_bytes):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    lying = await upload_simple(http, headers, asset["id"], mp4_bytes, "frame.png", "image/png")
    assert lying.status_code == 415
    script = await upload_simple(http, headers, asset["id"], b"#!/bin/sh\nrm -rf /\n",
                                 "clip.mp4", "video/mp4")
    assert script.status_code == 415
    elf = await upload_simple(http, headers, asset["id"], b"\x7fELF" + b"\0" * 4000,
                              "plugin.abc", "application/octet-stream")
    assert elf.status_code == 415
    assert await versions_of(http, headers, asset["id"]) == []


async def test_size_limits_are_413(http, studio, mp4_bytes, settings):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    big = padded(mp4_bytes, settings.simple_upload_limit_bytes + 1)
    assert (await upload_simple(http, headers, asset["id"], big)).status_code == 413
    huge = {"filename": "x.mov", "size": settings.max_upload_bytes + 1}
    response = await http.post(f"/api/v1/assets/{asset['id']}/uploads", json=huge,
                               headers=headers)
    assert response.status_code == 413


async def test_quota_of_bytes_and_of_open_uploads_is_429(http, mp4_bytes, settings):
    studio = await register_studio(http, roles=())
    headers = studio.admin.headers
    asset = await create_asset(http, headers)
    over = {"filename": "x.mov", "size": settings.studio_quota_bytes + 1}
    response = await http.post(f"/api/v1/assets/{asset['id']}/uploads", json=over,
                               headers=headers)
    assert response.status_code == 429 and response.json()["error"]["code"] == "quota_exceeded"
    assert int(response.headers["retry-after"]) >= 1
    opened = []
    for _ in range(settings.studio_max_open_uploads):
        opened.append(await declare(http, headers, asset["id"], mp4_bytes))
    response = await http.post(f"/api/v1/assets/{asset['id']}/uploads",
                               json={"filename": "x.mov", "size": 10}, headers=headers)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "too_many_uploads"
    aborted = await http.delete(f"/api/v1/uploads/{opened[0]['id']}", headers=headers)
    assert aborted.status_code == 204
    await declare(http, headers, asset["id"], mp4_bytes)  # the slot came back


async def test_presigned_urls_tampered_or_expired_are_refused_by_storage(
    http, studio, mp4_bytes, settings
):
    import asyncio

    from pipelines.storage import ObjectStore
    from serve.platform import storage_config

    asset = await create_asset(http, studio.artist.headers)
    await upload_simple(http, studio.artist.headers, asset["id"], mp4_bytes)
    url = (await http.get(f"/api/v1/assets/{asset['id']}/versions/1/download",
                          headers=studio.artist.headers)).json()["url"]
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert (await fetch(tampered)).status_code == 403
    other_key = url.replace("/clip.mp4?", "/other.mp4?")
    assert (await fetch(other_key)).status_code == 403
    store = ObjectStore(storage_config(settings))
    key = url.split(f"/{settings.s3_bucket}/", 1)[1].split("?", 1)[0]
    # The signing time is cut to whole seconds, so a URL lives between
    # expires_s - 1 and expires_s seconds: 3 leaves a loaded machine 2 s to fetch.
    short = await store.presigned_get(key, expires_s=3)
    assert (await fetch(short)).status_code == 200
    await asyncio.sleep(4.5)
    assert (await fetch(short)).status_code in (400, 403)
