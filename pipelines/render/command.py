"""The command renderer: any other DCC, as an argument-list template.

Placeholders: `{frame}`, `{first}`, `{last}`, `{output}` (a folder for the images) and
`{scene}` (the job's scene, downloaded once per node). A template that names `{frame}` runs
once per frame, else once per chunk. The command writes one image per frame into `{output}`
in the job's output format; the last number in a file's name is its frame
(`shot_0012.png`, `12.png`, `beauty.0012.exr`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from pipelines.media.errors import MediaError
from pipelines.media.runner import last_meaningful_line, run_tool
from pipelines.render.base import (
    OOM_SIGNS,
    FrameReport,
    LogLines,
    OnFrame,
    RenderFailed,
    RenderNeeds,
    RenderRequest,
    RenderResult,
)

PLACEHOLDERS = frozenset({"frame", "first", "last", "output", "scene"})
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def frame_of(path: Path) -> int | None:
    """The frame an image file holds, from the last number in its name."""
    found = _LAST_NUMBER.search(path.stem)
    return int(found.group(1)) if found else None


class CommandRenderer:
    name = "command"

    def needs(self, device: str) -> RenderNeeds:
        return RenderNeeds(scene=False, gpus=1 if device == "gpu" else 0)

    def runs(self, request: RenderRequest) -> list[list[int]]:
        per_frame = any("{frame" in arg for arg in request.argv)
        return [[f] for f in request.frames] if per_frame else [list(request.frames)]

    def expand(self, request: RenderRequest, frames: list[int]) -> list[str]:
        values = {"frame": frames[0], "first": frames[0], "last": frames[-1],
                  "output": str(request.out), "scene": str(request.scene or "")}
        return [arg.format(**values) for arg in request.argv]

    async def render(self, request: RenderRequest, on_frame: OnFrame,
                     log: LogLines) -> RenderResult:
        request.out.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + request.timeout_s
        result = RenderResult()
        for frames in self.runs(request):
            argv = self.expand(request, frames)
            try:
                ran = await run_tool(argv, timeout_s=max(0.1, deadline - time.monotonic()),
                                     memory_bytes=None, cpu_seconds=None, cwd=request.out,
                                     check=False)
            except MediaError as exc:
                log.append(f"$ {' '.join(argv)}\n[{exc.failure_class}] {exc.message}\n")
                raise RenderFailed(exc.message, failure_class=exc.failure_class) from None
            log.append(f"$ {' '.join(argv)}\n{ran.stdout.decode('utf-8', 'replace')}"
                       f"{ran.stderr_tail}\n[exit {ran.returncode}, {ran.wall_s:.2f}s]\n")
            if ran.returncode != 0:
                oom = ran.returncode == -9 or bool(OOM_SIGNS.search(ran.stderr_tail))
                line = last_meaningful_line(ran.stderr_tail, argv)
                raise RenderFailed(f"{Path(argv[0]).name} exited {ran.returncode}: {line}"
                                   .rstrip(": "), exit_code=ran.returncode, oom=oom)
            result.peak_rss = max(result.peak_rss or 0, ran.peak_rss or 0) or None
            for report in self._found(request, frames, ran.wall_s, ran.peak_rss):
                await on_frame(report)
                result.frames.append(report)
        return result

    def _found(self, request: RenderRequest, frames: list[int], wall_s: float,
               peak_rss: int | None) -> list[FrameReport]:
        images = {frame_of(p): p for p in request.out.glob(f"*.{request.extension}")}
        missing = [f for f in frames if f not in images]
        if missing:
            raise RenderFailed(f"the command wrote no .{request.extension} image for frames "
                               f"{missing[:10]}", failure_class="crash")
        each = wall_s / len(frames)
        return [FrameReport(f, images[f], each, peak_rss) for f in frames]
