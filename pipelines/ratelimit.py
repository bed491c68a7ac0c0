"""Fixed-window counters in MongoDB, so every Api replica shares one allowance."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from pipelines.db import declare_indexes
from pipelines.errors import DependencyUnavailable

COLLECTION = "rate_windows"
declare_indexes(COLLECTION, [IndexModel("expires_at", expireAfterSeconds=0),
                             IndexModel("window_end_s")])


async def purge_ended_windows(collection, now_s: float) -> int:
    """Delete counters of windows that are over.

    MongoDB's TTL monitor does this by `expires_at`; the embedded server stores a date set
    by `$set` as a string, which TTL cannot read, so the janitor also purges by number.
    """
    result = await collection.delete_many({"window_end_s": {"$lte": now_s}})
    return result.deleted_count


@dataclass(frozen=True)
class Decision:
    allowed: bool
    count: int
    limit: int
    retry_after_s: int


class WindowCounter:
    """`hit(key)` counts one event in the current window and says if it is within the limit."""

    def __init__(self, collection, limit: int, window_s: int,
                 clock: Callable[[], float] = time.time):
        self.collection = collection
        self.limit = limit
        self.window_s = window_s
        self.clock = clock

    async def hit(self, key: str, amount: int = 1) -> Decision:
        now = self.clock()
        window_start = int(now // self.window_s) * self.window_s
        window_end = window_start + self.window_s
        doc_id = f"{key}@{self.window_s}s:{window_start}"
        update = {
            "$inc": {"count": amount},
            # Kept for one extra window so the TTL monitor never races a live window.
            "$set": {"expires_at": datetime.fromtimestamp(window_end + self.window_s, UTC),
                     "window_end_s": window_end},
        }
        try:
            doc = await self._upsert(doc_id, update)
        except PyMongoError as exc:
            raise DependencyUnavailable("rate limiter unavailable") from exc
        count = int(doc["count"])
        retry_after = max(1, int(window_end - now + 0.999))
        return Decision(count <= self.limit, count, self.limit, retry_after)

    async def count(self, key: str) -> int:
        window_start = int(self.clock() // self.window_s) * self.window_s
        doc = await self.collection.find_one({"_id": f"{key}@{self.window_s}s:{window_start}"})
        return int(doc["count"]) if doc else 0

    async def _upsert(self, doc_id: str, update: dict) -> dict:
        for attempt in range(2):
            try:
                return await self.collection.find_one_and_update(
                    {"_id": doc_id}, update, upsert=True, return_document=ReturnDocument.AFTER
                )
            except DuplicateKeyError:
                # Two replicas upserted the same new window at once; the loser retries as an update.
                if attempt:
                    raise
        raise AssertionError("unreachable")
