"""Hand-off of new versions to the farm: one pending preview request per version.

The farm's dispatcher turns pending requests into preview jobs. Keeping the request as a
document (not a call) means a version is never left without previews because the farm was
down at the moment of upload.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from pipelines.db import declare_indexes

PREVIEW_REQUESTS = "preview_requests"
declare_indexes(PREVIEW_REQUESTS, [IndexModel([("state", ASCENDING), ("created_at", ASCENDING)])])


class PreviewRequests:
    def __init__(self, db, clock: Callable[[], float] = time.time):
        self.requests = db[PREVIEW_REQUESTS]
        self.clock = clock

    async def __call__(self, version: dict[str, Any]) -> None:
        """The VersionRecorder hook: idempotent, keyed by the version."""
        with contextlib.suppress(DuplicateKeyError):  # already requested: nothing to do
            await self.requests.insert_one({
                "_id": version["_id"], "studio_id": version["studio_id"],
                "asset_id": version["asset_id"], "version": version["number"],
                "key": version["key"], "family": version["media"]["family"],
                "state": "pending", "created_at": datetime.fromtimestamp(self.clock(), UTC),
            })

    async def pending(self, limit: int = 100) -> list[dict[str, Any]]:
        return await self.requests.find({"state": "pending"}).sort(
            "created_at", ASCENDING).limit(limit).to_list()
