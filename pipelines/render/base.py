"""What every renderer shares: the request, per-frame reports, needs and failures.

A renderer turns one chunk of frames into image files. It declares what it needs from the
farm (`RenderNeeds`: an input scene, GPUs) and classifies its own failures into the farm's
failure classes (`bad_input`, `crash`, `timeout`), raising `RenderFailed`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipelines.errors import FarmError

# Blender's file formats and the extension of the images each one writes.
IMAGE_FORMATS = {"PNG": "png", "OPEN_EXR": "exr", "JPEG": "jpg"}
IMAGE_TYPES = {"png": "image/png", "exr": "image/x-exr", "jpg": "image/jpeg"}
OOM_SIGNS = re.compile(r"out of memory|cannot allocate memory|std::bad_alloc|malloc.*fail|"
                       r"memory allocation failed|MemoryError|CUDA_ERROR_OUT_OF_MEMORY",
                       re.IGNORECASE)


class RenderFailed(FarmError):
    """A chunk did not render; `failure_class` is what the farm's retry policy reads.
    `oom` marks a failure that more memory may cure (a node with more may get the retry)."""

    code = "render_failed"

    def __init__(self, message: str, *, failure_class: str = "crash",
                 exit_code: int | None = None, oom: bool = False, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.failure_class = failure_class
        self.exit_code = exit_code
        self.oom = oom

    def __reduce__(self):
        return (_rebuild, (self.message, self.failure_class, self.exit_code, self.oom))


def _rebuild(message: str, failure_class: str, exit_code: int | None,
             oom: bool) -> RenderFailed:
    return RenderFailed(message, failure_class=failure_class, exit_code=exit_code, oom=oom)


@dataclass(frozen=True)
class RenderRequest:
    """One chunk: which frames of which scene, rendered how, written where."""

    frames: list[int]
    out: Path
    timeout_s: float
    scene: Path | None = None
    samples: int = 0              # 0: the scene's own setting
    percent: int = 100            # resolution percentage
    image_format: str = "PNG"     # a key of IMAGE_FORMATS
    device: str = "cpu"           # cpu | auto (a GPU when the node has one) | gpu
    threads: int = 0              # 0: every core
    argv: list[str] = field(default_factory=list)  # the command renderer's template

    @property
    def extension(self) -> str:
        return IMAGE_FORMATS[self.image_format]


@dataclass(frozen=True)
class FrameReport:
    frame: int
    path: Path
    seconds: float
    peak_rss: int | None = None  # bytes: the renderer's peak resident memory so far
    rss: int | None = None       # bytes: resident memory right after the frame

    def metrics(self) -> dict[str, Any]:
        return {"frame": self.frame, "seconds": round(self.seconds, 4),
                "peak_rss": self.peak_rss, "rss": self.rss}


@dataclass
class RenderResult:
    frames: list[FrameReport] = field(default_factory=list)
    scene: dict[str, Any] = field(default_factory=dict)  # what the renderer found (fps...)
    peak_rss: int | None = None  # bytes, of the whole process as the runner sampled it


@dataclass(frozen=True)
class RenderNeeds:
    """What a job with this renderer asks of the farm, checked when it is submitted."""

    scene: bool                         # a scene version is required
    scene_mimes: frozenset[str] = frozenset()  # accepted types (empty: any scene file)
    gpus: int = 0


OnFrame = Callable[[FrameReport], Awaitable[None]]


class LogLines(Protocol):
    """Where a renderer writes the tool's output (a node's live task log)."""

    def append(self, text: str) -> None: ...


class Renderer(Protocol):
    name: str

    def needs(self, device: str) -> RenderNeeds: ...

    async def render(self, request: RenderRequest, on_frame: OnFrame,
                     log: LogLines) -> RenderResult:
        """Render the chunk, awaiting `on_frame` for each finished frame as it comes; the
        tool's output goes to `log` whatever happens; failures raise RenderFailed."""
        ...


class LineSplitter:
    """Bytes as they arrive from a pipe, cut into whole lines."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> Iterator[str]:
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace").rstrip("\r")


def parse_line(line: str) -> tuple[str, dict[str, Any]] | None:
    """`FARM_FRAME {...}` → ("FARM_FRAME", {...}); anything else → None."""
    if not line.startswith("FARM_"):
        return None
    tag, _, payload = line.partition(" ")
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    return (tag, data) if isinstance(data, dict) else None
