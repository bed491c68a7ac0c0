"""Render tasks on a node: the scene once per node, frames stored as each one finishes.

Frames go to `studios/<studio>/jobs/<job>/frames/<frame:05d>.<ext>`: the key depends only
on job and frame, so a chunk that runs again (its node was lost, it crashed) overwrites its
frames instead of adding copies, and every frame exists exactly once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pipelines.errors import NotFound
from pipelines.farm.node.cache import InputCache
from pipelines.farm.node.runners import TaskContext
from pipelines.farm.protocol import TaskSpec
from pipelines.render.base import (
    IMAGE_FORMATS,
    IMAGE_TYPES,
    FrameReport,
    Renderer,
    RenderFailed,
    RenderRequest,
)
from pipelines.storage import ObjectStore


def frame_key(spec: TaskSpec, frame: int, extension: str) -> str:
    return f"{spec.job_prefix}/frames/{frame:05d}.{extension}"


def scene_info_key(spec: TaskSpec) -> str:
    return f"{spec.job_prefix}/frames/scene.json"


def frame_metrics(reports: list[FrameReport], process_peak: int | None) -> dict[str, Any]:
    """Per frame and per chunk: render seconds and peak resident memory."""
    peaks = [r.peak_rss for r in reports if r.peak_rss] + ([process_peak] if process_peak
                                                            else [])
    return {"frames": [r.metrics() for r in sorted(reports, key=lambda r: r.frame)],
            "frame_count": len(reports),
            "frame_seconds": round(sum(r.seconds for r in reports), 4),
            "peak_rss": max(peaks) if peaks else None}


class RenderRunner:
    def __init__(self, store: ObjectStore, cache: InputCache, renderers: dict[str, Renderer]):
        self.store = store
        self.cache = cache
        self.renderers = renderers

    async def __call__(self, ctx: TaskContext) -> None:
        payload = ctx.spec.payload
        renderer = self.renderers.get(payload["renderer"])
        if renderer is None:
            raise RenderFailed(f"this node has no {payload['renderer']} renderer")
        async with self._scene(payload.get("scene")) as (scene, downloaded):
            await self._render(ctx, renderer, scene, downloaded)

    async def _render(self, ctx: TaskContext, renderer: Renderer, scene: Path | None,
                      downloaded: bool) -> None:
        request = self._request(ctx, scene)
        reports: list[FrameReport] = []

        async def on_frame(report: FrameReport) -> None:
            key = frame_key(ctx.spec, report.frame, request.extension)
            await self.store.put_file(key, str(report.path), IMAGE_TYPES[request.extension])
            reports.append(report)
            await ctx.progress(len(reports) / max(1, len(request.frames)))

        result = await renderer.render(request, on_frame, ctx.log)
        if result.scene:  # the assembly reads the scene's frame rate from here
            await self.store.put_bytes(scene_info_key(ctx.spec), json.dumps(
                result.scene).encode(), "application/json")
        ctx.stored[:] = [frame_key(ctx.spec, r.frame, request.extension)
                                for r in sorted(reports, key=lambda r: r.frame)]
        ctx.metrics |= frame_metrics(reports, result.peak_rss) | {
            "scene_downloaded": downloaded, "device": result.scene.get("device")}

    @contextlib.asynccontextmanager
    async def _scene(self, scene: dict[str, Any] | None
                     ) -> AsyncIterator[tuple[Path | None, bool]]:
        """The scene from the node's cache, held (not evicted) while the chunk renders."""
        if not scene:
            yield None, False
            return
        try:
            path, downloaded = await self.cache.acquire(scene["key"], scene["sha256"])
        except NotFound:
            raise RenderFailed(f"the scene {scene['filename']} is missing from storage",
                               failure_class="bad_input") from None
        try:
            yield path, downloaded
        finally:
            self.cache.release(scene["sha256"])

    @staticmethod
    def _request(ctx: TaskContext, scene: Path | None) -> RenderRequest:
        payload = ctx.spec.payload
        if payload["format"] not in IMAGE_FORMATS:
            raise RenderFailed(f"unknown output format {payload['format']}",
                               failure_class="bad_input")
        return RenderRequest(
            frames=list(ctx.spec.frames), out=ctx.workdir / "frames",
            timeout_s=ctx.remaining_s(), scene=scene, samples=payload["samples"],
            percent=payload["percent"], image_format=payload["format"],
            device=payload["device"], threads=payload["threads"], argv=payload["argv"])
