"""The upload gateway: the byte routes without the Serve proxy, same contract as the Api.

Against the session's real services: the gateway actor started by `deployments.start`,
the embedded S3 server and database.
"""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest

from tests.support import contract
from tests.support.assets import MIB, chunks, create_asset, declare, upload_simple
from tests.support.identity import register_studio
from tests.support.media import padded

ERROR_KEYS = {"code", "message", "details", "request_id"}
OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.fixture
async def gateway(api, settings):
    async with contract.client(contract.GATEWAY_PATHS, base_url=settings.upload_url,
                               timeout=60) as client:
        yield client


@pytest.fixture
async def studio(http):
    return await register_studio(http, roles=("artist",))


def part_url(session: dict, number: int) -> str:
    return session["proxy_part_url_template"].replace("{part}", str(number))


async def stored(http, headers, asset_id: str, number: int = 1) -> bytes:
    link = await http.get(f"/api/v1/assets/{asset_id}/versions/{number}/download",
                          headers=headers)
    assert link.status_code == 200, link.text
    async with httpx.AsyncClient(timeout=60) as storage:
        return (await storage.get(link.json()["url"])).content


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS
    assert error["request_id"] and response.headers["x-request-id"] == error["request_id"]
    if code:
        assert error["code"] == code
    return error


async def test_declaration_points_at_the_gateway(http, studio, mp4_bytes, settings):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    session = await declare(http, headers, asset["id"], mp4_bytes)
    expected = f"{settings.upload_url}/api/v1/uploads/{session['id']}/parts/{{part}}"
    assert session["proxy_part_url_template"] == expected
    status = await http.get(f"/api/v1/uploads/{session['id']}", headers=headers)
    assert status.json()["proxy_part_url_template"] == expected


async def test_proxied_upload_through_the_gateway(http, gateway, studio, mp4_bytes):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    data = padded(mp4_bytes, 12 * MIB)
    session = await declare(http, headers, asset["id"], data)
    pieces = chunks(data, session["part_size"])
    sent = await asyncio.gather(*(
        gateway.put(part_url(session, n), content=piece, headers={**headers, **OCTETS})
        for n, piece in enumerate(pieces, start=1)))
    assert [r.status_code for r in sent] == [200] * len(pieces), [r.text for r in sent]
    assert [r.json()["size"] for r in sent] == [len(p) for p in pieces]
    assert all(r.headers["x-request-id"] for r in sent)
    done = await http.post(f"/api/v1/uploads/{session['id']}/complete",
                           json={"parts": [{"part": r.json()["part"], "etag": r.json()["etag"]}
                                           for r in sent]}, headers=headers)
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert await stored(http, headers, asset["id"]) == data


async def test_simple_upload_through_the_gateway(http, gateway, studio, mp4_bytes, settings):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    # Over one part: the gateway cuts the form's file into parts as it arrives.
    data = padded(mp4_bytes, settings.upload_part_size_bytes + 3 * MIB)
    response = await upload_simple(gateway, headers, asset["id"], data)
    assert response.status_code == 201, response.text
    version = response.json()
    assert version["size"] == len(data) and version["content_type"] == "video/mp4"
    assert version["sha256"] == hashlib.sha256(data).hexdigest()
    assert await stored(http, headers, asset["id"]) == data
    small = await upload_simple(gateway, headers, asset["id"], mp4_bytes)
    assert small.status_code == 201 and small.json()["number"] == 2


async def test_gateway_requires_a_credential_and_keeps_studios_apart(http, gateway, studio,
                                                                     mp4_bytes):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    session = await declare(http, headers, asset["id"], mp4_bytes)
    anonymous = await gateway.put(part_url(session, 1), content=mp4_bytes, headers=OCTETS)
    assert_error(anonymous, 401)
    assert_error(await upload_simple(gateway, {}, asset["id"], mp4_bytes), 401)
    other = await register_studio(http, roles=())
    foreign = await gateway.put(part_url(session, 1), content=mp4_bytes,
                                headers={**other.admin.headers, **OCTETS})
    assert_error(foreign, 404, "upload_not_found")
    assert_error(await upload_simple(gateway, other.admin.headers, asset["id"], mp4_bytes), 404)
    status = (await http.get(f"/api/v1/uploads/{session['id']}", headers=headers)).json()
    assert status["parts"] == []  # nothing of theirs reached storage


async def test_gateway_errors_follow_the_contract(http, gateway, studio, mp4_bytes):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    data = padded(mp4_bytes, 6 * MIB)
    session = await declare(http, headers, asset["id"], data)
    too_big = await gateway.put(part_url(session, 1), content=data[: 5 * MIB] + b"x",
                                headers={**headers, **OCTETS, "X-Request-ID": "gw-413.test"})
    error = assert_error(too_big, 413, "part_size_mismatch")
    assert error["request_id"] == "gw-413.test"
    assert_error(await gateway.put(part_url(session, 2), content=b"tiny",
                                   headers={**headers, **OCTETS}), 422, "part_size_mismatch")
    assert_error(await gateway.put(part_url(session, 1), content=b"{}",
                                   headers={**headers, "Content-Type": "application/json"}),
                 415)
    assert_error(await gateway.post(f"/api/v1/assets/{asset['id']}/file", json={"a": 1},
                                    headers=headers), 422, "form_expected")
    # Only the byte routes are served here.
    assert_error(await gateway.get("/api/v1/assets", headers=headers), 404)
    assert (await gateway.get("/docs")).status_code == 404


async def test_a_part_sent_chunked_and_too_long_never_reaches_storage(http, gateway, studio,
                                                                      mp4_bytes):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    data = padded(mp4_bytes, 6 * MIB)
    session = await declare(http, headers, asset["id"], data)

    async def body(extra: bytes):  # no Content-Length: only counting can tell
        for piece in chunks(data[: 5 * MIB] + extra, MIB):
            yield piece

    over = await gateway.put(part_url(session, 1), content=body(b"x"),
                             headers={**headers, **OCTETS})
    assert_error(over, 413)
    status = (await http.get(f"/api/v1/uploads/{session['id']}", headers=headers)).json()
    assert status["parts"] == [] and status["missing_parts"] == [1, 2]
    exact = await gateway.put(part_url(session, 1), content=body(b""),
                              headers={**headers, **OCTETS})
    assert exact.status_code == 200, exact.text


async def test_an_interrupted_part_leaves_nothing_and_a_stalled_one_blocks_nobody(
    http, gateway, studio, mp4_bytes
):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    data = padded(mp4_bytes, 11 * MIB)
    session = await declare(http, headers, asset["id"], data)
    release = asyncio.Event()

    async def stalls_then_breaks():
        yield data[:MIB]
        await release.wait()
        raise ConnectionError("cable pulled")

    stalled = asyncio.create_task(gateway.put(
        part_url(session, 1), content=stalls_then_breaks(), headers={**headers, **OCTETS}))
    await asyncio.sleep(0.5)
    other = await create_asset(http, headers)
    meanwhile = await upload_simple(gateway, headers, other["id"], mp4_bytes)
    assert meanwhile.status_code == 201, meanwhile.text
    assert not stalled.done()
    release.set()
    with pytest.raises((httpx.HTTPError, ConnectionError)):
        await stalled
    await asyncio.sleep(0.5)  # the gateway sees the disconnect and drops its storage request
    status = (await http.get(f"/api/v1/uploads/{session['id']}", headers=headers)).json()
    assert status["parts"] == [] and status["missing_parts"] == [1, 2, 3]


async def _stall(url: str, path: str, headers: dict, head: bytes, total: int,
                 content_type: str) -> bytes:
    """Send the request line, headers and `head` of a `total`-byte body, then nothing:
    the answer the server gives while the client stalls (or b"" if it just closes)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"PUT {path} HTTP/1.1" if "parts" in path else f"POST {path} HTTP/1.1",
             f"Host: {host}", f"Content-Type: {content_type}", f"Content-Length: {total}",
             *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + head)
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        return head + await asyncio.wait_for(reader.readexactly(length), 30)
    finally:
        writer.close()


async def test_a_body_that_stops_arriving_is_408_and_keeps_nothing(http, studio, mp4_bytes,
                                                                   settings):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    data = padded(mp4_bytes, 6 * MIB)
    session = await declare(http, headers, asset["id"], data)
    path = part_url(session, 1).removeprefix(settings.upload_url)
    answer = await _stall(settings.upload_url, path, headers, data[:MIB],
                          session["part_size"], "application/octet-stream")
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"body_timeout"' in answer
    status = (await http.get(f"/api/v1/uploads/{session['id']}", headers=headers)).json()
    assert status["parts"] == [] and status["missing_parts"] == [1, 2]
    # A simple upload that stalls inside its form: refused the same way, no version.
    boundary = "farmboundary"
    form_head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                 f"filename=\"clip.mp4\"\r\nContent-Type: video/mp4\r\n\r\n").encode()
    answer = await _stall(settings.upload_url, f"/api/v1/assets/{asset['id']}/file", headers,
                          form_head + mp4_bytes[:1000], len(form_head) + 10 * 1000,
                          f"multipart/form-data; boundary={boundary}")
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    versions = (await http.get(f"/api/v1/assets/{asset['id']}/versions",
                               headers=headers)).json()["items"]
    assert versions == []
