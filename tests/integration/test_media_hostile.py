"""Hostile inputs: playlists and scripts that point elsewhere, names that look like options or
protocols. Each ends in BadMedia or makes honest previews of the file itself; no other file
is opened and no connection is made. Tripwires prove it: a local TCP listener that records
every accept(), and a named pipe whose writer wakes only if something opens it. Control
tests show the tripwires do fire when the hardening is taken away.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.media.errors import BadMedia
from pipelines.media.previews import PreviewMaker
from pipelines.media.recipes import ProxyOptions, probe
from pipelines.media.runner import run_tool
from tests.support.ffmpeg_media import FifoTripwire, make_clip, make_image, streams

pytestmark = pytest.mark.timeout(120)
LIMITS = {"timeout_s": 20, "memory_bytes": 4 * 2**30, "cpu_seconds": 60}


class Listener:
    """A TCP port on 127.0.0.1 that counts connections and closes each at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def maker() -> PreviewMaker:
    return PreviewMaker(proxy=ProxyOptions(preset="ultrafast"))


def _playlist(path: Path, segment: str) -> Path:
    path.write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
                    f"#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n{segment}\n#EXT-X-ENDLIST\n")
    return path


async def _refused(maker: PreviewMaker, source: Path, work: Path) -> BadMedia:
    with pytest.raises(BadMedia) as caught:
        await maker.make(source, work, "video")
    assert caught.value.failure_class == "bad_input" and not caught.value.retryable
    assert _nothing_in(work)  # no poster, no proxy, no partial files
    return caught.value


def _nothing_in(work: Path) -> bool:
    return not work.exists() or list(work.iterdir()) == []


@pytest.mark.parametrize("name", ["list.m3u8", "disguised.mp4"])
async def test_hls_playlist_pointing_at_etc_passwd(maker, tmp_path, name):
    source = _playlist(tmp_path / name, "file:///etc/passwd")
    error = await _refused(maker, source, tmp_path / "out")
    assert "[hls] Format not on whitelist" in error.message
    assert "root:" not in error.message


@pytest.mark.parametrize("name", ["list.m3u8", "disguised.mov"])
async def test_hls_playlist_pointing_at_a_local_port(maker, tmp_path, listener, name):
    source = _playlist(tmp_path / name, f"http://127.0.0.1:{listener.port}/x.ts")
    error = await _refused(maker, source, tmp_path / "out")
    assert "not on whitelist" in error.message
    assert listener.accepted == 0


async def test_protocol_whitelist_alone_refuses_the_socket(tmp_path, listener):
    """Second layer: with the demuxer whitelist taken out, HLS runs and asks for http."""
    source = _playlist(tmp_path / "list.m3u8", f"http://127.0.0.1:{listener.port}/x.ts")
    result = await run_tool(_without_format_whitelist(probe("ffprobe", source)), check=False,
                            **LIMITS)
    assert result.returncode != 0
    assert "Protocol 'http' not on whitelist 'file'!" in result.stderr_tail
    assert listener.accepted == 0


async def test_control_an_unprotected_probe_does_connect(tmp_path, listener):
    source = _playlist(tmp_path / "list.m3u8", f"http://127.0.0.1:{listener.port}/x.ts")
    # FFmpeg's own default for a local input is "file,crypto,data"; a whitelist that names
    # http (as a careless one might) lets the playlist reach the port.
    await run_tool(["ffprobe", "-v", "error", "-protocol_whitelist", "file,http,tcp",
                    str(source)], check=False, **LIMITS)
    assert listener.accepted >= 1  # the tripwire works


async def test_hls_segment_on_a_local_media_file_is_never_opened(maker, tmp_path):
    trap = FifoTripwire(tmp_path / "secret.ts")  # a media extension: HLS's own check passes
    try:
        source = _playlist(tmp_path / "list.m3u8", f"file://{trap.path}")
        error = await _refused(maker, source, tmp_path / "out")
        assert "Format not on whitelist" in error.message
    finally:
        assert trap.close() is False


async def test_control_protocol_whitelist_alone_lets_hls_open_local_files(tmp_path):
    """Why the demuxer whitelist exists: `-protocol_whitelist file` allows file:// segments."""
    trap = FifoTripwire(tmp_path / "secret.ts")
    try:
        source = _playlist(tmp_path / "list.m3u8", f"file://{trap.path}")
        await run_tool(_without_format_whitelist(probe("ffprobe", source)), check=False,
                       **LIMITS)
    finally:
        assert trap.close() is True


async def test_ffconcat_script_is_refused(maker, tmp_path):
    script = tmp_path / "reel.mov"
    script.write_text("ffconcat version 1.0\nfile /etc/passwd\nfile clip.mp4\n")
    error = await _refused(maker, script, tmp_path / "out")
    assert "[concat] Format not on whitelist" in error.message


async def test_name_that_reads_as_the_concat_protocol_is_just_a_file(maker, tmp_path,
                                                                     monkeypatch):
    holder = tmp_path / "concat:" / "etc"
    holder.mkdir(parents=True)
    make_clip(holder / "passwd|x.mp4", seconds=1.5)
    monkeypatch.chdir(tmp_path)
    made = await maker.make("concat:/etc/passwd|x.mp4", tmp_path / "out", "video")
    assert made.probe.duration_s == pytest.approx(1.5, abs=0.1)  # the clip, nothing joined
    assert streams(made.proxy, "video")[0]["codec_name"] == "h264"
    assert "file:" + str(holder / "passwd|x.mp4") in made.commands[0]


async def test_concat_name_holding_text_is_bad_media(maker, tmp_path, monkeypatch):
    holder = tmp_path / "concat:" / "etc"
    holder.mkdir(parents=True)
    (holder / "passwd|x.mp4").write_text("root:x:0:0:root:/root:/bin/bash\n")
    monkeypatch.chdir(tmp_path)
    error = await _refused(maker, Path("concat:/etc/passwd|x.mp4"), tmp_path / "out")
    assert "Invalid data found" in error.message and "root:" not in error.message


async def test_name_that_reads_as_an_option_is_just_a_file(maker, tmp_path, monkeypatch):
    make_clip(tmp_path / "-i.mp4")
    monkeypatch.chdir(tmp_path)
    made = await maker.make("-i.mp4", tmp_path / "out", "video")
    assert made.kind == "video" and made.proxy.is_file()
    assert all("-i.mp4" not in argv for argv in made.commands)  # only as file:/abs/-i.mp4


async def test_option_named_file_with_text_is_bad_media_without_node_paths(maker, tmp_path):
    fake = tmp_path / "-f.mp4"
    fake.write_text("this is not a video\n" * 50)
    error = await _refused(maker, fake, tmp_path / "out")
    assert error.message == ("probe: [mov,mp4,m4a,3gp,3g2,mj2] moov atom not found "
                             "(-f.mp4: Invalid data found when processing input)")


async def test_text_renamed_mp4_is_bad_media(maker, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("meeting notes\n" * 100)
    error = await _refused(maker, fake, tmp_path / "out")
    assert "Invalid data found when processing input" in error.message


async def test_percent_name_does_not_read_sibling_files(maker, tmp_path):
    make_image(tmp_path / "frame1.png", size="800x200")  # what the image2 pattern would read
    make_image(tmp_path / "frame2.png", size="800x200")
    source = make_image(tmp_path / "frame%d.png", size="64x48")
    made = await maker.make(source, tmp_path / "out", "image")
    assert (made.probe.width, made.probe.height, made.probe.frames) == (64, 48, 1)
    thumb = streams(made.thumbnail, "video")[0]
    assert (thumb["width"], thumb["height"]) == (64, 48)


async def test_named_pipe_as_source_is_refused_without_blocking(maker, tmp_path):
    trap = FifoTripwire(tmp_path / "clip.mp4")
    try:
        with pytest.raises(BadMedia, match="not a regular file"):
            await maker.make(trap.path, tmp_path / "out", "video")
    finally:
        assert trap.close() is False


def _without_format_whitelist(argv: list[str]) -> list[str]:
    at = argv.index("-format_whitelist")
    return argv[:at] + argv[at + 2:]
