"""Exit codes and stderr become decisions: failure class, retryable, a message without paths."""

from __future__ import annotations

import pickle
import signal

import pytest

from pipelines.errors import InvalidInput
from pipelines.media.errors import BadMedia, MediaCrashed, MediaError, MediaTimeout
from pipelines.media.previews import moov_before_mdat, proxy_problems, top_level_atoms
from pipelines.media.probe import ProbeSummary
from pipelines.media.runner import ToolResult, last_meaningful_line, raise_for_outcome, scrub_paths
from serve.errors import status_for

ARGV = ["/usr/bin/ffmpeg", "-i", "file:/srv/farm/cache/ab12/shot 010.mov",
        "file:/srv/farm/work/ab12/proxy.part.mp4"]


def _outcome(code: int, stderr: str = "") -> None:
    raise_for_outcome(ARGV, ToolResult(code, b"", stderr, 0.1), memory_bytes=2**30,
                      cpu_seconds=60)


def test_success_raises_nothing():
    _outcome(0, "some warning")


def test_bad_input_is_the_last_meaningful_line_without_node_paths():
    stderr = ("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0c0a3b2c0] moov atom not found\n"
              "file:/srv/farm/cache/ab12/shot 010.mov: Invalid data found when processing "
              "input\n")
    with pytest.raises(BadMedia) as caught:
        _outcome(1, stderr)
    assert caught.value.message == ("[mov,mp4,m4a,3gp,3g2,mj2] moov atom not found "
                                    "(shot 010.mov: Invalid data found when processing input)")
    assert caught.value.details == [{"tool": "ffmpeg", "returncode": 1}]


def test_generic_trailers_are_skipped():
    stderr = ("[libx264 @ 0x1] width not divisible by 2 (321x181)\n"
              "Error initializing output stream 0:0 -- Error while opening encoder\n"
              "Conversion failed!\n")
    with pytest.raises(BadMedia, match="^Error initializing output stream 0:0"):
        _outcome(1, stderr)
    with pytest.raises(BadMedia, match="^ffmpeg exited with status 69$"):
        _outcome(69, "\n\nConversion failed!\r\n")


def test_signals_are_crashes_and_cpu_limit_is_a_timeout():
    with pytest.raises(MediaCrashed, match="killed by SIGSEGV$"):
        _outcome(-signal.SIGSEGV)
    with pytest.raises(MediaCrashed, match=r"SIGKILL \(out of memory, or killed from outside\)"):
        _outcome(-signal.SIGKILL)
    with pytest.raises(MediaTimeout, match="CPU limit of 60 s"):
        _outcome(-signal.SIGXCPU)
    with pytest.raises(MediaCrashed, match="signal 77"):
        _outcome(-77)


@pytest.mark.parametrize("line", [
    "ffmpeg: error while loading shared libraries: libx.so.1: failed to map segment from "
    "shared object",
    "x264 [error]: malloc of size 5353683 failed",
    "[h264 @ 0x1] Cannot allocate memory",
    "terminate called after throwing an instance of 'std::bad_alloc'",
])
def test_memory_failures_are_crashes(line):
    with pytest.raises(MediaCrashed, match=r"ffmpeg ran out of memory \(limit 1024 MiB\)"):
        _outcome(1, line + "\nConversion failed!\n")


def test_vague_failure_close_to_the_address_space_limit_is_out_of_memory():
    vague = "Error while opening encoder for output stream #0:0 - maybe incorrect parameters\n"
    near = ToolResult(1, b"", vague, 0.1, peak_vm=int(0.95 * 2**30))
    with pytest.raises(MediaCrashed, match="out of memory"):
        raise_for_outcome(ARGV, near, memory_bytes=2**30, cpu_seconds=None)
    far = ToolResult(1, b"", vague, 0.1, peak_vm=300 * 2**20)
    with pytest.raises(BadMedia, match="^Error while opening encoder"):
        raise_for_outcome(ARGV, far, memory_bytes=2**30, cpu_seconds=None)


def test_paths_are_scrubbed_but_urls_kept():
    assert scrub_paths("open /usr/lib/x86_64/libfoo.so.1 failed") == "open libfoo.so.1 failed"
    assert scrub_paths("segment 'http://127.0.0.1:9/x.ts'") == "segment 'http://127.0.0.1:9/x.ts'"
    assert scrub_paths("file:/srv/a/b/-f.mp4: bad", ["file:/srv/a/b/-f.mp4"]) == "-f.mp4: bad"
    assert scrub_paths("/srv/farm/cache/ab12/shot 010.mov: x", ARGV) == "shot 010.mov: x"
    assert scrub_paths("ratio 30000/1001 and 1/2") == "ratio 30000/1001 and 1/2"
    long = "[hls] Format not on whitelist '" + ",".join(["mov"] * 30) + "'"
    assert last_meaningful_line(long).endswith("...'") and len(last_meaningful_line(long)) < 90


def test_errors_carry_failure_class_and_survive_pickling():
    cases = [(BadMedia, "bad_input", False), (MediaTimeout, "timeout", True),
             (MediaCrashed, "crash", True)]
    for cls, failure_class, retryable in cases:
        error = cls("x", details=[{"tool": "ffmpeg"}])
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is cls and isinstance(copy, MediaError)
        assert (copy.failure_class, copy.retryable, copy.details) == (
            failure_class, retryable, [{"tool": "ffmpeg"}])
    assert issubclass(BadMedia, InvalidInput) and status_for(BadMedia("x")) == 422


def _summary(**fields) -> ProbeSummary:
    base = {"format_name": "mov", "duration_s": 1.0, "has_video": True, "has_audio": True,
            "video_codec": "h264", "audio_codec": "aac", "width": 1920, "height": 810,
            "pix_fmt": "yuv420p"}
    return ProbeSummary(**(base | fields))


def test_proxy_problems():
    assert proxy_problems(_summary(), had_audio=True, max_width=1920) == []
    found = proxy_problems(_summary(video_codec="hevc", pix_fmt="yuv444p", width=1921,
                                    has_audio=True, audio_codec="mp3"),
                           had_audio=True, max_width=1920)
    assert found == ["video codec is hevc, not h264", "pixel format is yuv444p, not yuv420p",
                     "size 1921x810 is not even", "width 1921 is over 1920",
                     "audio codec is mp3, not aac"]
    assert proxy_problems(_summary(), had_audio=False, max_width=1920) == [
        "audio stream where the source had none"]


def _box(name: bytes, payload: bytes = b"") -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + name + payload


def test_atom_order(tmp_path):
    fast = tmp_path / "fast.mp4"
    fast.write_bytes(_box(b"ftyp", b"isom") + _box(b"moov", b"x" * 20) + _box(b"mdat", b"y"))
    slow = tmp_path / "slow.mp4"
    slow.write_bytes(_box(b"ftyp") + _box(b"free") + _box(b"mdat", b"y" * 9) + _box(b"moov"))
    assert top_level_atoms(fast) == ["ftyp", "moov", "mdat"] and moov_before_mdat(fast)
    assert top_level_atoms(slow) == ["ftyp", "free", "mdat", "moov"]
    assert not moov_before_mdat(slow)
    large = tmp_path / "large.mp4"  # 64-bit size form
    large.write_bytes(_box(b"ftyp") + (1).to_bytes(4, "big") + b"mdat" +
                      (24).to_bytes(8, "big") + b"z" * 8 + _box(b"moov"))
    assert top_level_atoms(large) == ["ftyp", "mdat", "moov"]
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x02abcd" + b"?" * 30)
    assert top_level_atoms(junk) == [] and not moov_before_mdat(junk)
