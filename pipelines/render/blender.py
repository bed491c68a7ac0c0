"""The Blender renderer: a chunk of a .blend file's frames with Cycles, out of process.

The render runs in its own process through the hardened tool runner (argument list, own
process group killed on timeout or cancellation, clean environment): the `bpy` module in
this Python running `blender_worker.py`, or a `blender` executable when one is configured.
The worker prints one `FARM_FRAME` line per finished frame; each is handed on at once, so
frames are stored and progress reported while the rest of the chunk renders.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.media.errors import MediaError
from pipelines.media.runner import ToolResult, last_meaningful_line, run_tool
from pipelines.render import blender_worker
from pipelines.render.base import (
    OOM_SIGNS,
    FrameReport,
    LineSplitter,
    LogLines,
    OnFrame,
    RenderFailed,
    RenderNeeds,
    RenderRequest,
    RenderResult,
    parse_line,
)

WORKER = Path(blender_worker.__file__).resolve()
BLEND_MIME = "application/x-blender"
# An uncompressed .blend starts with "BLENDER"; compressed ones with gzip (before 3.0)
# or zstd (3.0 and later) magic.
BLEND_MAGIC = (b"BLENDER", b"\x1f\x8b", b"\x28\xb5\x2f\xfd")
PASSED_ENV = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
              "ONEAPI_DEVICE_SELECTOR", "HOME", "TMPDIR")


def check_scene(path: Path) -> None:
    """Refuse, before starting Blender, what cannot be a .blend file."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise RenderFailed(f"the scene cannot be read: {exc.strerror}",
                           failure_class="bad_input") from None
    if not head:
        raise RenderFailed("the scene file is empty", failure_class="bad_input")
    if not head.startswith(BLEND_MAGIC):
        raise RenderFailed("the scene is not a Blender file (no BLENDER header)",
                           failure_class="bad_input")


class BlenderRenderer:
    name = "blender"

    def __init__(self, blender: str | None = None, python: str = sys.executable,
                 environ: Mapping[str, str] | None = None):
        self.blender = blender  # an executable; None: the bpy module in `python`
        self.python = python
        source = os.environ if environ is None else environ
        self.env = {k: source[k] for k in PASSED_ENV if k in source}

    def needs(self, device: str) -> RenderNeeds:
        return RenderNeeds(scene=True, scene_mimes=frozenset({BLEND_MIME}),
                           gpus=1 if device == "gpu" else 0)

    def argv(self, request: RenderRequest) -> list[str]:
        if request.scene is None:
            raise RenderFailed("a Blender render needs a scene", failure_class="bad_input")
        args = ["--scene", str(request.scene), "--frames", ",".join(map(str, request.frames)),
                "--out", str(request.out), "--samples", str(request.samples),
                "--percent", str(request.percent), "--format", request.image_format,
                "--device", request.device, "--threads", str(request.threads)]
        if self.blender:
            return [self.blender, "-b", "--factory-startup", "--disable-autoexec", "-noaudio",
                    "--python-exit-code", str(blender_worker.CRASH), "-P", str(WORKER),
                    "--", *args]
        return [self.python, str(WORKER), *args]

    async def render(self, request: RenderRequest, on_frame: OnFrame,
                     log: LogLines) -> RenderResult:
        if request.scene is not None:
            check_scene(request.scene)
        request.out.mkdir(parents=True, exist_ok=True)
        stream = _FrameStream(request, on_frame)
        argv = self.argv(request)
        try:
            result = await run_tool(argv, timeout_s=request.timeout_s, memory_bytes=None,
                                    cpu_seconds=None, cwd=request.out, check=False,
                                    on_stdout=stream.feed, env=self.env)
        except MediaError as exc:  # past the time limit, or Blender could not start
            await stream.close(cancel=True)
            log.append(f"$ {' '.join(argv)}\n[{exc.failure_class}] {exc.message}\n")
            raise RenderFailed(exc.message, failure_class=exc.failure_class) from None
        except BaseException:
            await stream.close(cancel=True)
            raise
        log.append(_log(argv, result))
        await stream.close()
        classify(result, stream, request)
        return RenderResult(stream.frames, stream.scene, result.peak_rss)


class _FrameStream:
    """Parses the worker's lines as they arrive and hands finished frames on in order."""

    def __init__(self, request: RenderRequest, on_frame: OnFrame):
        self.request = request
        self.lines = LineSplitter()
        self.queue: asyncio.Queue[FrameReport | None] = asyncio.Queue()
        self.frames: list[FrameReport] = []
        self.scene: dict[str, Any] = {}
        self.error: dict[str, Any] | None = None
        self.consumer = asyncio.ensure_future(self._consume(on_frame))

    def feed(self, data: bytes) -> None:
        for line in self.lines.feed(data):
            parsed = parse_line(line)
            if parsed is None:
                continue
            tag, payload = parsed
            if tag == "FARM_FRAME" and isinstance(payload.get("frame"), int):
                self.queue.put_nowait(self._report(payload))
            elif tag == "FARM_SCENE":
                self.scene = payload
            elif tag == "FARM_ERROR":
                self.error = payload

    def _report(self, data: dict[str, Any]) -> FrameReport:
        frame = data["frame"]
        path = self.request.out / f"{frame:05d}.{self.request.extension}"
        return FrameReport(frame, path, float(data.get("seconds") or 0.0),
                           _int(data.get("peak_rss")), _int(data.get("rss")))

    async def _consume(self, on_frame: OnFrame) -> None:
        while (report := await self.queue.get()) is not None:
            await on_frame(report)
            self.frames.append(report)

    async def close(self, cancel: bool = False) -> None:
        if cancel:
            self.consumer.cancel()
            await asyncio.gather(self.consumer, return_exceptions=True)
            return
        self.queue.put_nowait(None)
        await self.consumer  # a failed hand-on (storage down) fails the chunk


def classify(result: ToolResult, stream: _FrameStream, request: RenderRequest) -> None:
    """Raise RenderFailed unless every frame of the chunk was rendered."""
    code, tail = result.returncode, result.stderr_tail
    error = stream.error or {}
    oom = bool(OOM_SIGNS.search(tail))
    if error:
        failure = "bad_input" if error.get("class") == "bad_input" else "crash"
        raise RenderFailed(str(error.get("message") or "the render failed"),
                           failure_class=failure, exit_code=code, oom=oom)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        killed = -code == signal.SIGKILL
        hint = " (out of memory, or killed from outside)" if killed else ""
        raise RenderFailed(f"Blender was killed by {name}{hint}", failure_class="crash",
                           exit_code=code, oom=oom or killed)
    if code != 0:
        line = last_meaningful_line(tail, [str(request.scene or ""), str(request.out)])
        what = "ran out of memory" if oom else f"exited with status {code}"
        raise RenderFailed(f"Blender {what}: {line}".rstrip(": "), failure_class="crash",
                           exit_code=code, oom=oom)
    missing = sorted(set(request.frames) - {f.frame for f in stream.frames})
    if missing:
        raise RenderFailed(f"Blender ended without frames {missing[:10]}",
                           failure_class="crash", exit_code=code)


def _log(argv: list[str], result: ToolResult) -> str:
    return (f"$ {' '.join(argv)}\n{result.stdout.decode('utf-8', 'replace')}"
            f"{result.stderr_tail}\n[exit {result.returncode}, {result.wall_s:.2f}s]\n")


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None
