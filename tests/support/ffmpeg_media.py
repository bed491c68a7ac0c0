"""Real media for the media tests, made by FFmpeg from its test sources, and ways to look
at what the previews produced (ffprobe, MP4 box order, key-frame spacing)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, timeout=120)


def make_clip(path: Path, *, size: str = "320x180", seconds: float = 1.0, rate: int = 24,
              audio: bool = False, pix_fmt: str = "yuv420p", faststart: bool = False,
              codec: str = "libx264", sar: str = "1") -> Path:
    """testsrc2 (+ a sine tone), by default encoded with x264 ultrafast."""
    inputs = ["-f", "lavfi", "-i", _pattern(size, rate, sar)]
    if audio:
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    codecs = ["-c:v", codec, "-pix_fmt", pix_fmt]
    codecs += ["-preset", "ultrafast"] if codec == "libx264" else []
    codecs += ["-c:a", "aac"] if audio else []
    codecs += ["-movflags", "+faststart"] if faststart else []
    ffmpeg(*inputs, "-t", str(seconds), *codecs, str(path))
    return path


def _pattern(size: str, rate: int, sar: str = "1") -> str:
    """testsrc2 rounds odd sizes down to even: draw even, then scale to the size asked."""
    width, height = (int(n) for n in size.split("x"))
    even = f"{width + width % 2}x{height + height % 2}"
    return f"testsrc2=size={even}:rate={rate},scale={width}:{height},setsar={sar}"


def make_audio(path: Path, *, seconds: float = 1.0) -> Path:
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:sample_rate=44100", "-t", str(seconds),
           str(path))
    return path


def make_image(path: Path, *, size: str = "640x360", pix_fmt: str | None = None) -> Path:
    """One frame; the codec follows the file extension (png, jpg, exr, dpx, ...)."""
    fmt = ["-pix_fmt", pix_fmt] if pix_fmt else []
    ffmpeg("-f", "lavfi", "-i", _pattern(size, 25), "-frames:v", "1", *fmt,
           "-update", "1", str(path))
    return path


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
         str(path)], check=True, capture_output=True, timeout=60)
    return json.loads(out.stdout)


def streams(path: Path, kind: str) -> list[dict[str, Any]]:
    return [s for s in probe(path)["streams"] if s["codec_type"] == kind]


def decodes(path: Path) -> bool:
    """Every frame of the file decodes without an error."""
    run = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", str(path),
                          "-f", "null", "-"], capture_output=True, text=True, timeout=120)
    return run.returncode == 0 and not run.stderr.strip()


def keyframe_gaps(path: Path) -> list[int]:
    """Packets from each key frame of the first video stream to the next one (or to the
    end, for the last): the longest wait a frame-accurate seek can have."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=flags",
         "-of", "csv=p=0", str(path)], check=True, capture_output=True, text=True, timeout=60)
    packets = out.stdout.split()
    keys = [i for i, flags in enumerate(packets) if "K" in flags]
    assert keys and keys[0] == 0, "the first packet must be a key frame"
    return [b - a for a, b in zip(keys, [*keys[1:], len(packets)], strict=True)]


def box_order(path: Path) -> list[str]:
    """Top-level ISO-BMFF boxes, read independently of the code under test."""
    data, names, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        if size == 1:
            size = int.from_bytes(data[offset + 8:offset + 16], "big")
        names.append(data[offset + 4:offset + 8].decode("latin-1"))
        if size < 8:
            break
        offset += size
    return names


def mean_luma(path: Path) -> float:
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vf",
                          "scale=64:-2,format=gray", "-frames:v", "1", "-f", "rawvideo", "-"],
                         check=True, capture_output=True, timeout=60).stdout
    return sum(raw) / max(1, len(raw))


class FifoTripwire:
    """A named pipe that records whether anything opened it for reading.

    A writer blocks in open() until a reader arrives, so a finished writer thread proves
    the file was opened; nothing can read it without that happening.
    """

    def __init__(self, path: Path):
        self.path = path
        os.mkfifo(path)
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()

    def _wait(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        self.opened.set()
        os.close(fd)

    def tripped(self) -> bool:
        return self.opened.is_set()

    def close(self) -> bool:
        """Release the writer; answer whether the pipe was opened before this call."""
        tripped = self.tripped()
        if not tripped:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            self.thread.join(5)
            os.close(fd)
        return tripped
