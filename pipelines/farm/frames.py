"""Frame ranges (`1001-1100`, `1-100x2`, `1-10,20,30-40`, `-5-5`) and their chunks: the
client library's parser (`studio_farm.frames`, rules there and in docs/job-types.md), with
its refusals as the API's 422 `invalid_frame_range`."""

from __future__ import annotations

from studio_farm import frames as _frames
from studio_farm.frames import MAX_FRAMES, format_frames

from pipelines.errors import InvalidInput

__all__ = ["MAX_FRAMES", "BadFrameRange", "chunk", "format_frames", "parse_frames"]


class BadFrameRange(InvalidInput):
    code = "invalid_frame_range"


def parse_frames(spec: str) -> list[int]:
    try:
        return _frames.parse_frames(spec)
    except _frames.FrameRangeError as exc:
        raise BadFrameRange(str(exc)) from None


def chunk(frames: list[int], size: int) -> list[list[int]]:
    try:
        return _frames.chunk(frames, size)
    except _frames.FrameRangeError as exc:
        raise BadFrameRange(str(exc)) from None
