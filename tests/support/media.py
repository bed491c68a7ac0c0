"""Real media made with FFmpeg for the tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def make_mp4(path: Path, seconds: float = 1.0, size: str = "320x180", rate: int = 24,
             pix_fmt: str = "yuv420p") -> Path:
    """H.264 test pattern; yuv444p allows odd sizes, which yuv420p cannot hold."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi",
         "-i", f"testsrc=size={size}:rate={rate}", "-t", str(seconds),
         "-pix_fmt", pix_fmt, "-c:v", "libx264", "-preset", "ultrafast", str(path)],
        check=True, timeout=60,
    )
    return path


def padded(media: bytes, total: int) -> bytes:
    """Real media at the head, random bytes after: large files without slow encodes."""
    return media + os.urandom(max(0, total - len(media)))
