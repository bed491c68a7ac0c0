"""The outbox: every message the farm sends, queued by the request that needs it and sent
by the worker (pipelines/mail/worker.py). The only module that writes `mail_outbox`.

A request never waits for SMTP: it queues and answers. A message is claimed by one
sender at a time (any process may run a worker), tried with backoff, and after
`max_attempts` marked failed, where admins see it (and may send it again). Bodies carry
codes and links, so a sent message's body is erased and no listing ever shows one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument

from pipelines.context import request_id_var
from pipelines.db import db_errors, declare_indexes, new_id, purge_date
from pipelines.errors import Conflict, NotFound
from pipelines.paging import fetch_page

OUTBOX = "mail_outbox"
RETENTION_S = 30 * 24 * 3600
CLAIM_S = 120.0  # a sender that died mid-send leaves its claim; it lapses after this
MAX_BACKOFF_S = 3600.0

declare_indexes(OUTBOX, [
    IndexModel([("state", ASCENDING), ("next_at_s", ASCENDING)]),
    IndexModel([("studio_id", ASCENDING), ("created_at_s", ASCENDING)]),
    IndexModel("purge_at", expireAfterSeconds=0),
])


@dataclass(frozen=True)
class Message:
    id: str
    to: str
    subject: str
    body: str
    attempts: int


class Outbox:
    def __init__(self, collection: Any, *, max_attempts: int = 8, retry_initial_s: float = 5.0,
                 clock: Callable[[], float] = time.time):
        self.collection = collection
        self.max_attempts, self.retry_initial_s = max_attempts, retry_initial_s
        self.clock = clock

    @db_errors
    async def queue(self, studio_id: str, kind: str, to: str, subject: str, body: str) -> str:
        now = self.clock()
        message_id = new_id()
        doc = {"_id": message_id, "studio_id": studio_id, "kind": kind, "to": to,
               "subject": subject, "body": body, "state": "queued", "attempts": 0,
               "next_at_s": now, "created_at_s": now, "sent_at_s": None, "last_error": None,
               "request_id": request_id_var.get(), "purge_at": purge_date(now + RETENTION_S)}
        await self.collection.insert_one(doc)
        return message_id

    @db_errors
    async def claim(self) -> Message | None:
        """The next message due (or one whose sender's claim lapsed), now this caller's."""
        now = self.clock()
        doc = await self.collection.find_one_and_update(
            {"$or": [{"state": "queued", "next_at_s": {"$lte": now}},
                     {"state": "sending", "next_at_s": {"$lte": now}}]},
            {"$set": {"state": "sending", "next_at_s": now + CLAIM_S},
             "$inc": {"attempts": 1}},
            sort=[("next_at_s", ASCENDING)], return_document=ReturnDocument.AFTER)
        if doc is None:
            return None
        return Message(doc["_id"], doc["to"], doc["subject"], doc["body"], doc["attempts"])

    @db_errors
    async def sent(self, message: Message) -> None:
        await self.collection.update_one(
            {"_id": message.id, "state": "sending"},
            {"$set": {"state": "sent", "sent_at_s": self.clock(), "last_error": None},
             "$unset": {"body": ""}})

    @db_errors
    async def not_sent(self, message: Message, error: str) -> bool:
        """Back to the queue with a longer wait, or failed after the last try; True when
        it failed for good."""
        failed = message.attempts >= self.max_attempts
        wait = min(MAX_BACKOFF_S, self.retry_initial_s * 2 ** (message.attempts - 1))
        await self.collection.update_one({"_id": message.id, "state": "sending"}, {"$set": {
            "state": "failed" if failed else "queued", "last_error": error[:500],
            "next_at_s": self.clock() + wait}})
        return failed

    @db_errors
    async def list(self, studio_id: str, *, state: str | None, limit: int,
                   cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        query: dict[str, Any] = {"studio_id": studio_id}
        if state:
            query["state"] = state
        return await fetch_page(self.collection, query, "created_at_s", limit=limit,
                                cursor=cursor, descending=True)

    @db_errors
    async def send_again(self, studio_id: str, message_id: str) -> dict[str, Any]:
        """A failed message back in the queue, its tries counted afresh."""
        doc = await self.collection.find_one_and_update(
            {"_id": message_id, "studio_id": studio_id, "state": "failed"},
            {"$set": {"state": "queued", "attempts": 0, "next_at_s": self.clock()}},
            projection={"body": 0, "purge_at": 0}, return_document=ReturnDocument.AFTER)
        if doc is not None:
            return doc
        if await self.collection.count_documents({"_id": message_id, "studio_id": studio_id}):
            raise Conflict("only a failed message is sent again", code="mail_not_failed")
        raise NotFound("no such message", code="mail_not_found")
