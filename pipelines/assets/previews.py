"""Hand-off of new versions to the farm: one pending preview request per version.

The farm's dispatcher turns pending requests into preview jobs. Keeping the request as a
document (not a call) means a version is never left without previews because the farm was
down at the moment of upload.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from pipelines.db import declare_indexes
from pipelines.media.previews import FAMILIES

PREVIEW_REQUESTS = "preview_requests"
declare_indexes(PREVIEW_REQUESTS, [IndexModel([("state", ASCENDING), ("created_at", ASCENDING)])])


CLAIM_S = 60.0  # a claim that made no job in this long (its dispatcher died) is void


class PreviewRequests:
    def __init__(self, db, clock: Callable[[], float] = time.time,
                 wake: Callable[[], Awaitable[None]] | None = None):
        self.requests = db[PREVIEW_REQUESTS]
        self.clock = clock
        self.wake = wake

    async def __call__(self, version: dict[str, Any]) -> None:
        """The VersionRecorder hook: idempotent, keyed by the version; wakes the farm.
        Scenes and archives have nothing to preview: no request, so no job that fails."""
        if version["media"]["family"] not in FAMILIES:
            return
        with contextlib.suppress(DuplicateKeyError):  # already requested: nothing to do
            await self.requests.insert_one({
                "_id": version["_id"], "studio_id": version["studio_id"],
                "asset_id": version["asset_id"], "version": version["number"],
                "key": version["key"], "family": version["media"]["family"],
                "state": "pending", "created_at": datetime.fromtimestamp(self.clock(), UTC),
            })
        if self.wake is not None:
            # Only a head start: the dispatcher also adopts every second, so a failed wake
            # must not fail the upload that recorded the version.
            with contextlib.suppress(Exception):
                await self.wake()

    def _open(self) -> dict[str, Any]:
        """Pending, or claimed so long ago without a job that its claimer must have died."""
        return {"$or": [{"state": "pending"},
                        {"state": "claimed", "claimed_s": {"$lt": self.clock() - CLAIM_S}}]}

    async def pending(self, limit: int = 100) -> list[dict[str, Any]]:
        return await self.requests.find(self._open()).sort(
            "created_at", ASCENDING).limit(limit).to_list()

    async def claim(self, request_id: str) -> bool:
        """Take a request for one dispatcher; False when another has it."""
        claimed = await self.requests.find_one_and_update(
            {"_id": request_id, **self._open()},
            {"$set": {"state": "claimed", "claimed_s": self.clock()}})
        return claimed is not None

    async def adopted(self, request_id: str, job_id: str | None) -> None:
        await self.requests.update_one({"_id": request_id},
                                       {"$set": {"state": "adopted", "job_id": job_id}})
