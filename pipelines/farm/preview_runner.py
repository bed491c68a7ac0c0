"""Preview tasks on a node: fetch the version once (cache by SHA-256), make, store previews."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

from config.settings import Settings
from pipelines.farm.runners import TaskContext
from pipelines.media.previews import PreviewLimits, PreviewMaker
from pipelines.storage import ObjectStore, storage_config

CONTENT_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4"}


class InputCache:
    """Inputs downloaded once per node, keyed by content hash; concurrent asks share one
    download, and a file appears under its final name only once complete."""

    def __init__(self, store: ObjectStore, directory: Path):
        self.store = store
        self.directory = directory
        self.locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str, sha256: str) -> Path:
        return (await self.fetch(key, sha256))[0]

    async def fetch(self, key: str, sha256: str) -> tuple[Path, bool]:
        """The local file, and whether this call downloaded it."""
        path = self.directory / sha256
        async with self.locks.setdefault(sha256, asyncio.Lock()):
            if path.exists():
                return path, False
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = self.directory / f".{sha256}.{uuid.uuid4().hex}"
            try:
                await self.store.download(key, str(partial))
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            os.replace(partial, path)
        return path, True


def preview_key(payload: dict[str, Any], studio_id: str, name: str) -> str:
    return (f"studios/{studio_id}/assets/{payload['asset_id']}/previews/"
            f"v{payload['version']}/{name}")


class PreviewRunner:
    def __init__(self, settings: Settings, cache_dir: Path, cache: InputCache | None = None):
        self.store = cache.store if cache else ObjectStore(storage_config(settings))
        self.cache = cache or InputCache(self.store, cache_dir)
        self.maker = PreviewMaker(PreviewLimits(ffmpeg=settings.ffmpeg, ffprobe=settings.ffprobe))

    async def __call__(self, ctx: TaskContext) -> None:
        payload, studio_id = ctx.spec["payload"], ctx.spec["studio_id"]
        source = await self.cache.get(payload["key"], payload["sha256"])
        await ctx.progress(0.1)
        made = await self.maker.make(source, ctx.workdir / "previews", payload["family"])
        keys = {}
        for name, path in made.files().items():
            key = preview_key(payload, studio_id, path.name)
            await self.store.put_file(key, str(path),
                                      CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
            keys[name] = key
        ctx.log.extend(" ".join(argv) + "\n" for argv in made.commands)
        ctx.extra["previews"] = made.as_dict() | {"keys": keys}
