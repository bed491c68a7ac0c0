"""Assembly and progressive previews of render jobs, on a node (FFmpeg stays off the
dispatcher): frames from storage → movie, poster and filmstrip, or a low-res preview."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from pipelines.errors import FarmError, NotFound
from pipelines.farm.frames import parse_frames
from pipelines.farm.node.render import frame_key, scene_info_key
from pipelines.farm.node.runners import TaskContext
from pipelines.farm.protocol import TaskSpec
from pipelines.media.previews import PreviewLimits
from pipelines.render.base import IMAGE_FORMATS, RenderFailed
from pipelines.render.movie import MovieMaker, hold_frames
from pipelines.storage import ObjectStore

log = logging.getLogger("farm.agent")
DEFAULT_FPS = 24.0
CONTENT_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg"}


def movie_prefix(spec: TaskSpec) -> str:
    """Under the target asset, so deleting the asset removes the movie with it."""
    return (f"studios/{spec.studio_id}/assets/{spec.payload['target_asset_id']}/"
            f"renders/{spec.job_id}")


def progressive_key(spec: TaskSpec) -> str:
    return f"{spec.job_prefix}/preview/{spec.task_id}.mp4"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class _Frames:
    """Rendered frames of a job, fetched from storage a few at a time."""

    def __init__(self, store: ObjectStore, limits: PreviewLimits | None = None,
                 parallel: int = 8):
        self.store = store
        self.maker = MovieMaker(limits)
        self.parallel = asyncio.Semaphore(parallel)

    async def fps(self, spec: TaskSpec) -> float:
        if spec.payload.get("fps"):
            return float(spec.payload["fps"])
        try:
            scene = json.loads(await self.store.get_bytes(scene_info_key(spec)))
        except (NotFound, ValueError):
            return DEFAULT_FPS  # the command renderer reports no scene
        return float(scene.get("fps") or DEFAULT_FPS)

    async def fetch(self, spec: TaskSpec, frames: list[int], folder: Path,
                    missing_ok: bool = False) -> dict[int, Path]:
        extension = IMAGE_FORMATS[spec.payload["format"]]  # downloads create `folder`

        async def one(frame: int) -> tuple[int, Path | None]:
            path = folder / f"{frame:05d}.{extension}"
            async with self.parallel:
                try:
                    await self.store.download(frame_key(spec, frame, extension), str(path))
                except NotFound:
                    if missing_ok:
                        return frame, None
                    raise RenderFailed(f"frame {frame} is missing from storage") from None
            return frame, path

        found = await asyncio.gather(*(one(f) for f in frames))
        return {frame: path for frame, path in found if path is not None}


class AssembleRunner(_Frames):
    async def __call__(self, ctx: TaskContext) -> None:
        spec = ctx.spec
        frames = await self.fetch(spec, list(spec.frames), ctx.workdir / "frames")
        await ctx.progress(0.3)
        fps = await self.fps(spec)
        movie = await self.maker.assemble([frames[f] for f in sorted(frames)],
                                          ctx.workdir / "movie", fps)
        ctx.log.extend(" ".join(argv) + "\n" for argv in movie.commands)
        keys = {}
        for name, path in movie.files().items():
            keys[name] = f"{movie_prefix(spec)}/{path.name}"
            await self.store.put_file(keys[name], str(path), CONTENT_TYPES[path.suffix])
        ctx.results["movie"] = {"key": keys["proxy"], "size": movie.movie.stat().st_size,
                              "sha256": sha256_of(movie.movie), "fps": fps,
                              "frames": len(frames)}
        ctx.results["previews"] = movie.as_dict() | {"keys": keys}
        ctx.stored[:] = sorted(keys.values())


class ProgressiveRunner(_Frames):
    """Best effort: a preview that cannot be made is logged and skipped, never a failed
    job (the finished movie does not depend on it)."""

    async def __call__(self, ctx: TaskContext) -> None:
        try:
            ctx.results["preview"] = await self._make(ctx)
        except FarmError as exc:
            log.warning("progressive preview skipped", extra={"task_id": ctx.spec.task_id,
                                                              "error": exc.message})
            ctx.log.append(f"[skipped] {exc.message}\n")
            ctx.results["preview"] = None

    async def _make(self, ctx: TaskContext) -> dict[str, Any]:
        spec = ctx.spec
        timeline = parse_frames(spec.payload["timeline"])
        present = await self.fetch(spec, list(spec.frames), ctx.workdir / "frames",
                                   missing_ok=True)
        fps = await self.fps(spec)
        movie = await self.maker.progressive(hold_frames(timeline, present),
                                             ctx.workdir / "movie", fps)
        ctx.log.extend(" ".join(argv) + "\n" for argv in movie.commands)
        key = progressive_key(spec)
        await self.store.put_file(key, str(movie.movie), "video/mp4")
        return {"key": key, "frames": len(present), "of": len(timeline)}
