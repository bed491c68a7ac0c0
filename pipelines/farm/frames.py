"""Frame ranges as TDs write them (`1-100x2,120`) and their chunks."""

from __future__ import annotations

import re

from pipelines.errors import InvalidInput

MAX_FRAMES = 100_000
_PART = re.compile(r"^(-?\d+)(?:-(-?\d+)(?:x(\d+))?)?$")


class BadFrameRange(InvalidInput):
    code = "invalid_frame_range"


def parse_frames(spec: str) -> list[int]:
    """`1-10`, `1-100x2`, `5`, comma-separated; sorted, each frame once."""
    frames: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        match = _PART.match(part)
        if not match:
            raise BadFrameRange(f"{part!r} is not a frame, a range `a-b` or a stepped "
                                "range `a-bxN`")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        step = int(match.group(3) or 1)
        if last < first or step < 1:
            raise BadFrameRange(f"{part!r}: ranges go upwards with a step of 1 or more")
        if (last - first) // step + 1 + len(frames) > MAX_FRAMES:
            raise BadFrameRange(f"more than {MAX_FRAMES} frames")
        frames.update(range(first, last + 1, step))
    if not frames:
        raise BadFrameRange("no frames")
    return sorted(frames)


def chunk(frames: list[int], size: int) -> list[list[int]]:
    if size < 1:
        raise BadFrameRange("chunk size must be 1 or more")
    return [frames[i:i + size] for i in range(0, len(frames), size)]
