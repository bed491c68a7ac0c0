"""Frame ranges as TDs write them (`1001-1100`, `1-100x2`, `1-10,20,30-40`, `-5-5`) and
their chunks. The one parser of the server and the client library (the server wraps it).

- A part is a frame (`5`, `-3`, `0`), a range `a-b` (both ends in, `a` ≤ `b`) or a stepped
  range `a-bxN` (every Nth frame from `a`, up to `b`). Parts are comma-separated; spaces
  around a part are ignored. Negative and zero frames are frames like any other.
- The frames of a job are the union, sorted, each once: `1-5,3-8` is `1-8`.
- Chunks are runs of `chunk_size` consecutive frames *of that sorted list*: `1-100x2` in
  chunks of 5 is `1,3,5,7,9`, `11,...,19`, ...; the last chunk may be shorter.
"""

from __future__ import annotations

import re

MAX_FRAMES = 100_000
_PART = re.compile(r"^(-?\d+)(?:-(-?\d+)(?:x(\d+))?)?$")


class FrameRangeError(ValueError):
    """A frame range that means nothing (the server answers it with a 422)."""


def parse_frames(spec: str) -> list[int]:
    """`1-10`, `1-100x2`, `5`, comma-separated; sorted, each frame once."""
    frames: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        match = _PART.match(part)
        if not match:
            raise FrameRangeError(f"{part!r} is not a frame, a range `a-b` or a stepped "
                                "range `a-bxN`")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        step = int(match.group(3) or 1)
        if last < first or step < 1:
            raise FrameRangeError(f"{part!r}: ranges go upwards with a step of 1 or more")
        if (last - first) // step + 1 + len(frames) > MAX_FRAMES:
            raise FrameRangeError(f"more than {MAX_FRAMES} frames")
        frames.update(range(first, last + 1, step))
    if not frames:
        raise FrameRangeError("no frames")
    return sorted(frames)


def format_frames(frames: list[int]) -> str:
    """The shortest spelling `parse_frames` reads back: runs as ranges, steps as `xN`."""
    parts: list[str] = []
    values = sorted(set(frames))
    i = 0
    while i < len(values):
        j = i
        step = values[i + 1] - values[i] if i + 1 < len(values) else 1
        while j + 1 < len(values) and values[j + 1] - values[j] == step:
            j += 1
        if j == i:
            parts.append(str(values[i]))
        elif j == i + 1 and step != 1:  # two frames: a list says it more plainly
            parts.append(str(values[i]))
            j = i
        else:
            parts.append(f"{values[i]}-{values[j]}" + (f"x{step}" if step != 1 else ""))
        i = j + 1
    return ",".join(parts)


def chunk(frames: list[int], size: int) -> list[list[int]]:
    if size < 1:
        raise FrameRangeError("chunk size must be 1 or more")
    return [frames[i:i + size] for i in range(0, len(frames), size)]
