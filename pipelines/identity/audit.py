"""The audit log: who did what, when, from where, under which request id."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pymongo import IndexModel

from pipelines.context import request_id_var
from pipelines.db import db_errors, declare_indexes, new_id, purge_date
from pipelines.identity.models import AuditEntryOut, Page
from pipelines.identity.records import AUDIT
from pipelines.paging import fetch_page

RETENTION_S = 400 * 24 * 3600  # a little over a year: covers an annual access review

declare_indexes(AUDIT, [
    IndexModel([("studio_id", 1), ("at_s", -1)]),
    IndexModel("purge_at", expireAfterSeconds=0),
])

# The actions written, for readers and filters.
LOGIN = "auth.login"
LOGIN_FAILED = "auth.login_failed"
LOGIN_THROTTLED = "auth.login_throttled"
PASSWORD_CHANGED = "auth.password_changed"
FAMILY_REVOKED = "auth.token_family_revoked"
STUDIO_REGISTERED = "studio.registered"
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
KEY_CREATED = "api_key.created"
KEY_REVOKED = "api_key.revoked"
KEY_USED = "api_key.used"  # at most once per key per LAST_USED_RESOLUTION_S
EMAIL_VERIFIED = "user.email_verified"
USER_INVITED = "user.invited"
INVITATION_REVOKED = "user.invitation_revoked"
INVITATION_ACCEPTED = "user.invitation_accepted"
PASSWORD_RESET = "auth.password_reset"
MAIL_SENT_AGAIN = "mail.sent_again"
# The studio's work: assets and review, jobs, the farm's nodes.
ASSET_CREATED = "asset.created"
ASSET_DELETED = "asset.deleted"
VERSION_UPLOADED = "asset.version_uploaded"
REVIEW_DECIDED = "review.decided"
JOB_SUBMITTED = "job.submitted"
JOB_CANCELLED = "job.cancelled"
JOB_CHANGED = "job.changed"  # priority and other settings
NODE_CHANGED = "node.changed"  # lock, drain, unlock, labels


class AuditLog:
    def __init__(self, collection: Any, clock: Callable[[], float] = time.time):
        self.collection = collection
        self.clock = clock

    @db_errors
    async def record(self, studio_id: str, action: str, *, actor: dict[str, Any] | None,
                     target: dict[str, Any] | None = None, client: str | None = None,
                     details: dict[str, Any] | None = None) -> None:
        now = self.clock()
        await self.collection.insert_one({
            "_id": new_id(), "studio_id": studio_id, "at_s": now, "action": action,
            "actor": actor or {"kind": "anonymous"}, "target": target or {},
            "request_id": request_id_var.get(), "client": client, "details": details or {},
            "purge_at": purge_date(now + RETENTION_S),
        })

    @db_errors
    async def list(self, studio_id: str, *, limit: int, cursor: str | None,
                   action: str | None = None, actor: str | None = None,
                   target: str | None = None) -> Page[AuditEntryOut]:
        """`actor`: a user id (or an API key id); `target`: the id of the object acted on."""
        query: dict[str, Any] = {"studio_id": studio_id}
        if action:
            query["action"] = action
        if actor:
            query["$or"] = [{"actor.user_id": actor}, {"actor.key_id": actor}]
        if target:
            query["target.id"] = target
        docs, next_cursor = await fetch_page(self.collection, query, "at_s", limit=limit,
                                             cursor=cursor, descending=True)
        return Page[AuditEntryOut](items=[AuditEntryOut.of(d) for d in docs],
                                   next_cursor=next_cursor)
