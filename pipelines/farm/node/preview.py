"""Preview tasks on a node: fetch the version once (cache by SHA-256), make, store previews."""

from __future__ import annotations

from typing import Any

from config.settings import Settings
from pipelines.farm.node.cache import InputCache
from pipelines.farm.node.runners import TaskContext
from pipelines.media.previews import PreviewLimits, PreviewMaker

CONTENT_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4"}


def preview_key(payload: dict[str, Any], studio_id: str, name: str) -> str:
    return (f"studios/{studio_id}/assets/{payload['asset_id']}/previews/"
            f"v{payload['version']}/{name}")


class PreviewRunner:
    def __init__(self, settings: Settings, cache: InputCache):
        self.store = cache.store
        self.cache = cache
        self.maker = PreviewMaker(PreviewLimits(ffmpeg=settings.ffmpeg, ffprobe=settings.ffprobe))

    async def __call__(self, ctx: TaskContext) -> None:
        payload, studio_id = ctx.spec.payload, ctx.spec.studio_id
        async with self.cache.use(payload["key"], payload["sha256"]) as (source, _):
            await ctx.progress(0.1)
            made = await self.maker.make(source, ctx.workdir / "previews", payload["family"])
        keys = {}
        for name, path in made.files().items():
            key = preview_key(payload, studio_id, path.name)
            await self.store.put_file(key, str(path),
                                      CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
            keys[name] = key
        ctx.log.extend(" ".join(argv) + "\n" for argv in made.commands)
        ctx.results["previews"] = made.as_dict() | {"keys": keys}
