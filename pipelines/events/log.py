"""The event log: every event is stored first, with a per-studio sequence number, then sent.

A sequence number is taken by inserting the event itself at `_id = <studio>:<head + 1>`:
the unique `_id` makes a concurrent writer that chose the same number fail, and it tries
the next one. So numbers never repeat nor skip, in any number of replicas, and, unlike a
separate `$inc` counter, a number exists only once its event is stored: the stored events
of a studio are always one contiguous range. Readers rely on that: a hole below the
newest event means it was pruned (the client must resync), never "not written yet".

After storing, `append` hands the public event to the injected publisher (the broadcaster)
and only logs a failure: the event is stored, and replicas catch up from here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError, PyMongoError

from pipelines.clock import iso
from pipelines.context import request_id_var
from pipelines.db import declare_indexes
from pipelines.errors import DependencyUnavailable
from pipelines.events.rooms import audience

log = logging.getLogger("farm.events")

EVENTS = "events"
_GUESSES = 4  # next numbers tried after a collision before the head is read again

declare_indexes(EVENTS, [
    IndexModel([("studio_id", ASCENDING), ("seq", ASCENDING)], unique=True),
    IndexModel([("studio_id", ASCENDING), ("rooms", ASCENDING), ("seq", ASCENDING)]),
    IndexModel([("studio_id", ASCENDING), ("at_s", ASCENDING)]),
    # Redundant on MongoDB; the embedded server matches an equality through an index only
    # when one is named after the field alone (see pipelines/farm/store.py), and otherwise
    # reads every event to find a studio's newest.
    IndexModel([("studio_id", ASCENDING)]),
])


class EventPublisher(Protocol):
    """Live delivery of stored events (the broadcaster actor, or an in-process stand-in)."""

    async def publish(self, event: dict[str, Any]) -> None: ...


def event_doc(studio_id: str, seq: int, type_: str, room: str, data: dict[str, Any],
              at_s: float) -> dict[str, Any]:
    return {"_id": f"{studio_id}:{seq}", "studio_id": studio_id, "seq": seq, "type": type_,
            "room": room, "rooms": audience(studio_id, room), "at_s": at_s,
            "at": datetime.fromtimestamp(at_s, UTC), "data": data,
            "request_id": request_id_var.get()}


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """The event as clients see it (architecture's event contract)."""
    at = iso(doc["at_s"]) if "at_s" in doc else doc["at"].isoformat()
    return {"seq": doc["seq"], "type": doc["type"], "studio_id": doc["studio_id"],
            "room": doc["room"], "at": at, "data": doc["data"],
            "request_id": doc.get("request_id")}


class EventLog:
    def __init__(self, db, publisher: EventPublisher | None = None,
                 clock: Callable[[], float] = time.time):
        self.events = db[EVENTS]
        self.publisher = publisher
        self.clock = clock

    async def append(self, studio_id: str, type_: str, room: str,
                     data: dict[str, Any]) -> dict[str, Any]:
        """Store the event, then publish it; returns the stored document (with its seq)."""
        # Milliseconds, like BSON dates: a replayed event reads exactly like the live one.
        at_s = math.floor(self.clock() * 1000) / 1000
        try:
            doc = await self._insert_next(studio_id, type_, room, data, at_s)
        except PyMongoError as exc:
            raise DependencyUnavailable("event log unavailable") from exc
        if self.publisher is not None:
            try:
                await self.publisher.publish(public(doc))
            except Exception as exc:  # noqa: BLE001 - stored is what counts; replicas catch up
                log.warning("event %s:%s stored, not published: %s", studio_id, doc["seq"],
                            getattr(exc, "message", type(exc).__name__))
        return doc

    async def _insert_next(self, studio_id: str, type_: str, room: str,
                           data: dict[str, Any], at_s: float) -> dict[str, Any]:
        while True:
            seq = await self.head(studio_id) + 1
            for _ in range(_GUESSES):
                doc = event_doc(studio_id, seq, type_, room, data, at_s)
                try:
                    await self.events.insert_one(doc)
                    return doc
                except DuplicateKeyError:
                    seq += 1  # a concurrent writer took it; the next one is likely free

    async def head(self, studio_id: str) -> int:
        """The newest sequence number of the studio (0 before its first event)."""
        newest = await self.events.find({"studio_id": studio_id}, {"seq": 1}).sort(
            "seq", DESCENDING).limit(1).to_list()
        return int(newest[0]["seq"]) if newest else 0

    async def oldest(self, studio_id: str) -> int | None:
        """The oldest sequence number still kept, or None when the studio has none."""
        first = await self.events.find({"studio_id": studio_id}, {"seq": 1}).sort(
            "seq", ASCENDING).limit(1).to_list()
        return int(first[0]["seq"]) if first else None

    async def after(self, studio_id: str, seq: int, *, room: str | None = None,
                    limit: int = 100, upto: int | None = None,
                    rooms: list[str] | None = None) -> list[dict[str, Any]]:
        """Stored events with a sequence number above `seq` (and at most `upto`), in order.

        `room` (or any of `rooms`) keeps the events delivered to that room (see rooms.py).
        """
        bounds: dict[str, int] = {"$gt": seq}
        if upto is not None:
            bounds["$lte"] = upto
        query: dict[str, Any] = {"studio_id": studio_id, "seq": bounds}
        if room:
            query["rooms"] = room
        elif rooms:
            query["rooms"] = {"$in": rooms}
        try:
            cursor = self.events.find(query).sort("seq", ASCENDING).limit(limit)
            return await cursor.to_list()
        except PyMongoError as exc:
            raise DependencyUnavailable("event log unavailable") from exc

    async def prune(self, *, max_age_s: float = 0, max_count: int = 0,
                    studio_ids: list[str] | None = None) -> int:
        """Retention: drop events older than `max_age_s` or beyond the newest `max_count`.

        A studio's newest event is always kept: the next number is read from it.
        """
        if not (max_age_s or max_count):
            return 0
        removed = 0
        for studio_id in studio_ids or await self.events.distinct("studio_id"):
            head = await self.head(studio_id)
            reasons: list[dict[str, Any]] = []
            if max_age_s:
                reasons.append({"at_s": {"$lt": self.clock() - max_age_s}})
            if max_count:
                reasons.append({"seq": {"$lte": head - max_count}})
            result = await self.events.delete_many(
                {"studio_id": studio_id, "seq": {"$lt": head}, "$or": reasons})
            removed += result.deleted_count
        return removed
