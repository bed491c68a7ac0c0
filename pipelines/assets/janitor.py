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
from pipelines.assets.service import AssetService
from pipelines.assets.store import VERSIONS
from pipelines.assets.uploads import UploadService
from pipelines.errors import FarmError
from pipelines.storage import ObjectStore

log = logging.getLogger("farm.janitor")


class Janitor:
    def __init__(self, db, store: ObjectStore, assets: AssetService, uploads: UploadService,
                 quota: Quota, clock: Callable[[], float] = time.time):
        self.db = db
        self.store = store
        self.assets = assets
        self.uploads = uploads
        self.quota = quota
        self.clock = clock

    async def reap_expired_uploads(self, batch: int = 100) -> int:
        now = self.clock()
        reaped = 0
        # `receiving`: a simple upload whose process died while the bytes streamed in.
        for session in await self.uploads.expired(now, batch):
            claimed = await self.uploads.expire(session)
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
        for asset in await self.assets.deleted_unpurged(batch):
            prefix = f"studios/{asset['studio_id']}/assets/{asset['_id']}/"
            await self.store.remove_prefix(prefix)
            if not await self.assets.claim_purge(asset["_id"]):
                continue
            versions = await self.db[VERSIONS].find({"asset_id": asset["_id"]}).to_list()
            await self.quota.release_bytes(asset["studio_id"], sum(v["size"] for v in versions))
            purged += 1
        return purged

    async def run_once(self) -> dict[str, int]:
        return {"uploads_reaped": await self.reap_expired_uploads(),
                "assets_purged": await self.purge_deleted_assets()}
