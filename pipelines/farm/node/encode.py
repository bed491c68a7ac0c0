"""Encode tasks on a node: an asset version → a deliverable (H.264 or ProRes), stored as
the job's output. The version is fetched once per node (the input cache); FFmpeg runs with
the same hardening and limits as previews (pipelines/media/recipes.py)."""

from __future__ import annotations

from pathlib import Path

from pipelines.farm.node.cache import InputCache
from pipelines.farm.node.runners import TaskContext
from pipelines.media import recipes
from pipelines.media.previews import PreviewLimits
from pipelines.media.runner import run_tool


class EncodeRunner:
    def __init__(self, cache: InputCache, limits: PreviewLimits):
        self.cache = cache
        self.limits = limits

    async def __call__(self, ctx: TaskContext) -> None:
        payload = ctx.spec.payload
        _, extension = recipes.ENCODE_CODECS[payload["codec"]]
        out = ctx.workdir / "out" / f"{Path(payload['filename']).stem}.{extension}"
        out.parent.mkdir(parents=True, exist_ok=True)
        async with self.cache.use(payload["key"], payload["sha256"]) as (source, _):
            await ctx.progress(0.1)
            argv = recipes.encode(self.limits.ffmpeg, source, out, codec=payload["codec"],
                                  crf=payload["crf"], max_height=payload.get("max_height"))
            ctx.log.append(" ".join(argv) + "\n")
            result = await run_tool(argv, timeout_s=ctx.remaining_s(),
                                    memory_bytes=self.limits.memory_bytes,
                                    cpu_seconds=self.limits.cpu_seconds, cwd=ctx.workdir)
        ctx.log.append(result.stderr_tail)
        ctx.outputs.append(out)
        ctx.metrics["encoded_bytes"] = out.stat().st_size
