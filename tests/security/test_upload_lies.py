"""Uploads that lie: about their content (a script or program named .png, a playlist or
concat script named .mp4/.ts/.obj/.mov, a declared type the bytes contradict), and about
their size (a declaration, a part or a Content-Length that does not match what is sent).

Both ways in (the one-request form upload, on the Api and on the gateway; the declared,
part-by-part upload through the gateway) end in a clear 4xx, and afterwards the asset has
no version, no object in storage, no open upload, and its studio's quota is as before.
"""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import urlsplit

import pytest
from minio import Minio

from tests.integration.test_identity_matrix import World, fresh_headers
from tests.security.conftest import contract_error
from tests.support.assets import create_asset, declare, upload_simple

ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 200
PLAYLIST = (b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n"
            b"file:///etc/passwd\n#EXTINF:10.0,\nhttp://127.0.0.1:9/x.ts\n#EXT-X-ENDLIST\n")
# An OBJ's comment lines are an HLS playlist's tags: make the sniffer count statements.
POLYGLOT_OBJ = PLAYLIST + b"".join(b"v 0 0 %d\n" % i for i in range(3))
# (file name, declared type, bytes) -> the code of the refusal
SPOOFS = {
    "script.png": ("image/png", b"#!/bin/sh\ncat /etc/passwd\n" * 20, "file_type_not_allowed"),
    "program.png": ("image/png", ELF, "file_type_not_allowed"),
    "page.jpg": ("image/jpeg", b"<html><script>alert(1)</script></html>",
                 "file_type_not_allowed"),
    "hls.mp4": ("video/mp4", PLAYLIST, "file_type_not_allowed"),
    "hls.ts": ("video/mp2t", PLAYLIST, "file_type_not_allowed"),
    "hls.obj": ("model/obj", POLYGLOT_OBJ, "file_type_not_allowed"),
    "reel.mov": ("video/quicktime", b"ffconcat version 1.0\nfile /etc/passwd\n",
                 "file_type_not_allowed"),
    "subfile.mp4": ("video/mp4", b"subfile,,start,0,end,0,,:/etc/passwd\n",
                    "file_type_not_allowed"),
}


class Evidence:
    """What one asset and its studio hold before and after a refused upload."""

    def __init__(self, db, settings, studio_id: str, asset_id: str):
        self.db, self.studio_id, self.asset_id = db, studio_id, asset_id
        parts = urlsplit("http://" + settings.s3_endpoint)
        self.s3 = Minio(parts.netloc, settings.s3_access_key.get_secret_value(),
                        settings.s3_secret_key.get_secret_value(), secure=False,
                        region=settings.s3_region)
        self.bucket = settings.s3_bucket

    async def usage(self) -> dict:
        return await self.db["studio_usage"].find_one({"_id": self.studio_id}) or {}

    async def assert_nothing_kept(self, usage_before: dict) -> None:
        assert await self.db["asset_versions"].find_one({"asset_id": self.asset_id}) is None
        open_ones = await self.db["uploads"].find(
            {"asset_id": self.asset_id, "state": {"$in": ["open", "receiving", "completing"]}}
        ).to_list()
        assert open_ones == [] or all(u["mode"] == "multipart" for u in open_ones)
        prefix = f"studios/{self.studio_id}/assets/{self.asset_id}/"
        objects = await asyncio.to_thread(
            lambda: list(self.s3.list_objects(self.bucket, prefix=prefix, recursive=True)))
        assert objects == [], [o.object_name for o in objects]
        after = await self.usage()
        assert after.get("bytes", 0) == usage_before.get("bytes", 0)


@pytest.fixture
async def fresh(http, db, settings, world: World):
    async def make():
        headers = await fresh_headers(http, world, "A artist")
        asset = await create_asset(http, headers)
        evidence = Evidence(db, settings, world.a.studio_id, asset["id"])
        return headers, asset, evidence, await evidence.usage()
    return make


@pytest.mark.parametrize("server", ["api", "gateway"])
@pytest.mark.parametrize("name", SPOOFS)
async def test_spoofed_content_on_the_form_upload(http, gateway, fresh, server, name):
    declared, data, code = SPOOFS[name]
    headers, asset, evidence, before = await fresh()
    client = http if server == "api" else gateway
    response = await upload_simple(client, headers, asset["id"], data, filename=name,
                                   content_type=declared)
    error = contract_error(response, 415, code)
    assert b"root:" not in response.content
    assert error["message"]
    await evidence.assert_nothing_kept(before)
    # The slot came back: the studio's open uploads are as before.
    assert (await evidence.usage()).get("open_uploads", 0) == before.get("open_uploads", 0)


@pytest.mark.parametrize("name", SPOOFS)
async def test_spoofed_content_on_the_part_upload(http, gateway, fresh, name):
    declared, data, code = SPOOFS[name]
    headers, asset, evidence, before = await fresh()
    session = await declare(http, headers, asset["id"], data, filename=name,
                            content_type=declared)
    url = session["proxy_part_url_template"].replace("{part}", "1")
    put = await gateway.put(url, content=data,
                            headers={**headers, "Content-Type": "application/octet-stream"})
    if put.status_code == 200:  # bytes are judged at completion, once all are there
        done = await http.post(f"/api/v1/uploads/{session['id']}/complete", headers=headers,
                               json={"parts": [{"part": 1, "etag": put.json()["etag"]}]})
        contract_error(done, 415, code)
    else:
        contract_error(put, 415, code)
    await evidence.assert_nothing_kept(before)
    state = (await http.get(f"/api/v1/uploads/{session['id']}", headers=headers)).json()
    assert state["state"] != "completed" and state["version"] is None


async def test_png_bytes_declared_as_video_are_a_mismatch(http, gateway, fresh, tmp_path):
    from tests.support.ffmpeg_media import make_image

    png = make_image(tmp_path / "f.png", size="64x48").read_bytes()
    for client in (http, gateway):
        headers, asset, evidence, before = await fresh()
        response = await upload_simple(client, headers, asset["id"], png, filename="f.mp4",
                                       content_type="video/mp4")
        contract_error(response, 415, "content_type_mismatch")
        await evidence.assert_nothing_kept(before)


async def test_size_lies_on_the_part_upload(http, gateway, fresh, mp4_bytes):
    headers, asset, evidence, before = await fresh()
    octets = {**headers, "Content-Type": "application/octet-stream"}
    data = mp4_bytes
    session = await declare(http, headers, asset["id"], data)
    url = session["proxy_part_url_template"].replace("{part}", "1")
    # More than declared, fewer than declared, and a part that does not exist.
    contract_error(await gateway.put(url, content=data + b"x", headers=octets), 413)
    contract_error(await gateway.put(url, content=data[:-1], headers=octets), 422,
                   "part_size_mismatch")
    contract_error(await gateway.put(url.replace("/parts/1", "/parts/2"), content=data,
                                     headers=octets), 422)
    state = (await http.get(f"/api/v1/uploads/{session['id']}", headers=headers)).json()
    assert state["parts"] == []
    # Declared smaller than the file: the right size, the wrong bytes -> sha256 refuses it.
    small = await declare(http, headers, asset["id"], data[:100],
                          sha256=hashlib.sha256(data[:100]).hexdigest())
    url = small["proxy_part_url_template"].replace("{part}", "1")
    contract_error(await gateway.put(url, content=data, headers=octets), 413)
    await evidence.assert_nothing_kept(before)


async def raw_put(port: int, path: str, headers: dict, declared: int, body: bytes) -> bytes:
    """A PUT whose Content-Length says `declared` while `body` is what is sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"PUT {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {declared}",
            "Content-Type: application/octet-stream", "Connection: close",
            *[f"{k}: {v}" for k, v in headers.items()], "", ""]
    writer.write("\r\n".join(head).encode() + body)
    await writer.drain()
    if declared > len(body):
        writer.write_eof()  # and then nothing more: the body is cut short
    try:
        return await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()


async def test_content_length_lies_keep_nothing(http, fresh, settings, mp4_bytes):
    headers, asset, evidence, before = await fresh()
    session = await declare(http, headers, asset["id"], mp4_bytes)
    path = f"/api/v1/uploads/{session['id']}/parts/1"
    port = urlsplit(settings.upload_url).port
    size = len(mp4_bytes)
    short = await raw_put(port, path, headers, size, mp4_bytes[: size // 2])
    long = await raw_put(port, path, headers, size - 10, mp4_bytes)
    small_claim = await raw_put(port, path, headers, 10, mp4_bytes)
    for answer in (short, long, small_claim):
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1") else 0
        assert status == 0 or 400 <= status < 500, answer[:300]
    state = (await http.get(f"/api/v1/uploads/{session['id']}", headers=headers)).json()
    assert state["parts"] == [], state
    await evidence.assert_nothing_kept(before)
    # The upload is still usable for the honest client.
    from tests.support.assets import put_proxied

    assert (await put_proxied(http, headers, session["id"], 1, mp4_bytes)).status_code == 200
