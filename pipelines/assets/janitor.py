"""Background clean-up: expired uploads are aborted, deleted assets' objects removed.

S3 lifecycle rules for incomplete multipart uploads are ignored by MinIO, so this is ours.
Every step claims its document with a conditional update first, so several replicas can
run the janitor at once without doing anything twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pipelines.assets.quota import Quota
from pipelines.assets.store import ASSETS, UPLOADS, VERSIONS
from pipelines.assets.uploads import UploadService
from pipelines.errors import FarmError
from pipelines.storage import ObjectStore

log = logging.getLogger("farm.janitor")


class Janitor:
    def __init__(self, db, store: ObjectStore, uploads: UploadService, quota: Quota,
                 clock: Callable[[], float] = time.time):
        self.db = db
        self.store = store
        self.uploads = uploads
        self.quota = quota
        self.clock = clock

    async def reap_expired_uploads(self, batch: int = 100) -> int:
        now = self.clock()
        reaped = 0
        # `receiving`: a simple upload whose process died while the bytes streamed in.
        for session in await self.db[UPLOADS].find(
            {"state": {"$in": ["open", "receiving"]}, "expires_at": {"$lte": now}}
        ).limit(batch).to_list():
            claimed = await self.db[UPLOADS].find_one_and_update(
                {"_id": session["_id"], "state": session["state"]},
                {"$set": {"state": "expired"}})
            if claimed is None:
                continue  # completed, aborted or reaped meanwhile
            try:
                await self.uploads.release(claimed)
            except FarmError as exc:  # the multipart upload may already be gone
                log.warning("expired upload %s: %s", claimed["_id"], exc.message)
            reaped += 1
        return reaped

    async def purge_deleted_assets(self, batch: int = 20) -> int:
        purged = 0
        for asset in await self.db[ASSETS].find(
            {"deleted": True, "purged": False}).limit(batch).to_list():
            prefix = f"studios/{asset['studio_id']}/assets/{asset['_id']}/"
            await self.store.remove_prefix(prefix)
            claimed = await self.db[ASSETS].find_one_and_update(
                {"_id": asset["_id"], "purged": False}, {"$set": {"purged": True}})
            if claimed is None:
                continue
            versions = await self.db[VERSIONS].find({"asset_id": asset["_id"]}).to_list()
            await self.quota.release_bytes(asset["studio_id"], sum(v["size"] for v in versions))
            purged += 1
        return purged

    async def run_once(self) -> dict[str, int]:
        return {"uploads_reaped": await self.reap_expired_uploads(),
                "assets_purged": await self.purge_deleted_assets()}
