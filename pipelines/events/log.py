"""The event log: every event is stored first, with a per-studio sequence number, then sent.

Sequence numbers come from one atomic `$inc` per studio, so concurrent writers in any number
of replicas never skip or repeat a number. Live delivery (the broadcaster) reads from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from pipelines.context import request_id_var
from pipelines.db import declare_indexes
from pipelines.errors import DependencyUnavailable

EVENTS = "events"
COUNTERS = "event_counters"

declare_indexes(EVENTS, [
    IndexModel([("studio_id", ASCENDING), ("seq", ASCENDING)], unique=True),
    IndexModel([("studio_id", ASCENDING), ("room", ASCENDING), ("seq", ASCENDING)]),
    IndexModel("at"),
])


def event_doc(studio_id: str, seq: int, type_: str, room: str, data: dict[str, Any],
              at: datetime) -> dict[str, Any]:
    return {"_id": f"{studio_id}:{seq}", "studio_id": studio_id, "seq": seq, "type": type_,
            "room": room, "at": at, "data": data, "request_id": request_id_var.get()}


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """The event as clients see it (architecture's event contract)."""
    return {"seq": doc["seq"], "type": doc["type"], "studio_id": doc["studio_id"],
            "room": doc["room"], "at": doc["at"].isoformat(), "data": doc["data"]}


class EventLog:
    def __init__(self, db, clock: Callable[[], float] = time.time):
        self.events = db[EVENTS]
        self.counters = db[COUNTERS]
        self.clock = clock

    async def _next_seq(self, studio_id: str) -> int:
        for attempt in range(2):
            try:
                counter = await self.counters.find_one_and_update(
                    {"_id": studio_id}, {"$inc": {"seq": 1}},
                    upsert=True, return_document=ReturnDocument.AFTER,
                )
                return int(counter["seq"])
            except DuplicateKeyError:
                if attempt:  # two first events of a studio raced; the loser retries
                    raise
        raise AssertionError("unreachable")

    async def append(self, studio_id: str, type_: str, room: str,
                     data: dict[str, Any]) -> dict[str, Any]:
        """Store the event and return it (with its seq)."""
        try:
            seq = await self._next_seq(studio_id)
            at = datetime.fromtimestamp(self.clock(), UTC)
            doc = event_doc(studio_id, seq, type_, room, data, at)
            await self.events.insert_one(doc)
        except PyMongoError as exc:
            raise DependencyUnavailable("event log unavailable") from exc
        return doc

    async def after(self, studio_id: str, seq: int, *, room: str | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"studio_id": studio_id, "seq": {"$gt": seq}}
        if room:
            query["room"] = room
        cursor = self.events.find(query).sort("seq", ASCENDING).limit(limit)
        return await cursor.to_list()
