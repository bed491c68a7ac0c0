"""Hostile media past the upload's content check, into the preview maker.

FFmpeg skips an ID3v2 tag before probing. The upload's check wants an MPEG audio frame
right after the tag, but sees only the leading bytes: behind a tag longer than those (as
cover art makes them), an HLS playlist or concat script is accepted as `audio/mpeg` and
reaches FFmpeg as a playlist. Each is
uploaded both ways, read back from storage, and given to the preview maker the farm node
runs (PreviewMaker, the same FFmpeg arguments): it is refused as bad input, no local file
is opened (a named-pipe tripwire), no connection is made (a listening socket), no output
is left and no file content appears in the reason.

Plain (untagged) playlists, concat scripts and `subfile:` texts never get that far: they
are refused at upload (test_upload_lies.py); the FFmpeg-level hardening on files given
directly is tests/integration/test_media_hostile.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from pipelines.assets.content import SNIFF_BYTES
from pipelines.media.errors import BadMedia
from pipelines.media.previews import PreviewMaker
from pipelines.media.recipes import ProxyOptions
from tests.integration.test_identity_matrix import World, fresh_headers
from tests.integration.test_media_hostile import Listener
from tests.support.assets import create_asset, declare, upload_simple
from tests.support.ffmpeg_media import FifoTripwire

# An ID3v2.4 tag of padding longer than the bytes the upload's check reads (synchsafe size).
_PADDING = SNIFF_BYTES + 1024
ID3 = b"ID3\x04\x00\x00" + bytes((_PADDING >> s) & 0x7F for s in (21, 14, 7, 0)) + bytes(_PADDING)
pytestmark = pytest.mark.timeout(180)


def playlist(segment: str) -> bytes:
    return (b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n"
            + segment.encode() + b"\n#EXT-X-ENDLIST\n")


def corpus(port: int, fifo: Path) -> dict[str, bytes]:
    return {
        "hls-etc-passwd.mp3": ID3 + playlist("file:///etc/passwd"),
        "hls-http.mp3": ID3 + playlist(f"http://127.0.0.1:{port}/x.ts"),
        "hls-local-ts.mp3": ID3 + playlist(f"file://{fifo}"),
        "hls-relative.mp3": ID3 + playlist("../../../../../../etc/passwd"),
        "concat.mp3": ID3 + b"ffconcat version 1.0\nfile /etc/passwd\n",
        "concat-subfile.mp3": ID3 + b"ffconcat version 1.0\nfile 'subfile:,,start,0,end,"
                                    b"0,,:/etc/passwd'\n",
    }


async def stored(http: httpx.AsyncClient, headers: dict, asset_id: str, number: int) -> bytes:
    link = await http.get(f"/api/v1/assets/{asset_id}/versions/{number}/download",
                          headers=headers)
    assert link.status_code == 200, link.text
    async with httpx.AsyncClient(timeout=60) as storage:
        return (await storage.get(link.json()["url"])).content


async def upload_both_ways(http, gateway, headers: dict, name: str, data: bytes) -> dict:
    asset = await create_asset(http, headers, kind="other")
    simple = await upload_simple(gateway, headers, asset["id"], data, filename=name,
                                 content_type="audio/mpeg")
    assert simple.status_code == 201, simple.text
    session = await declare(http, headers, asset["id"], data, filename=name,
                            sha256=hashlib.sha256(data).hexdigest())
    url = session["proxy_part_url_template"].replace("{part}", "1")
    put = await gateway.put(url, content=data,
                            headers={**headers, "Content-Type": "application/octet-stream"})
    assert put.status_code == 200, put.text
    done = await http.post(f"/api/v1/uploads/{session['id']}/complete", headers=headers,
                           json={"parts": [{"part": 1, "etag": put.json()["etag"]}]})
    assert done.status_code == 201, done.text
    return asset


async def test_tagged_playlists_and_scripts_never_read_or_connect(http, gateway, world: World,
                                                                   tmp_path):
    headers = await fresh_headers(http, world, "A artist")
    listener = Listener()
    trap = FifoTripwire(tmp_path / "secret.ts")
    maker = PreviewMaker(proxy=ProxyOptions(preset="ultrafast"))
    try:
        for name, data in corpus(listener.port, trap.path).items():
            asset = await upload_both_ways(http, gateway, headers, name, data)
            for number in (1, 2):
                source = tmp_path / f"{number}-{name}"
                source.write_bytes(await stored(http, headers, asset["id"], number))
                assert source.read_bytes() == data
                work = tmp_path / f"out-{number}-{name}"
                with pytest.raises(BadMedia) as refused:
                    await maker.make(source, work, "audio")
                error = refused.value
                assert error.failure_class == "bad_input" and not error.retryable, name
                assert "root:" not in error.message and "/bin/" not in error.message, name
                assert not work.exists() or not list(work.iterdir()), name
        assert listener.accepted == 0
    finally:
        listener.close()
        assert trap.close() is False, "a playlist segment opened a local file"
