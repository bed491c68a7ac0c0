"""API keys for pipeline scripts: shown once, stored hashed, never above their creator.

A key acts with the lower of its own role and its owner's current role, and stops working
when its owner is deactivated: demoting or removing a person also disarms their scripts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pymongo import IndexModel

from pipelines.db import db_errors, declare_indexes, new_id
from pipelines.errors import Forbidden, NotFound, Unauthenticated
from pipelines.identity import audit as events
from pipelines.identity.audit import AuditLog
from pipelines.identity.models import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, Page, Principal
from pipelines.identity.permissions import Action, can, lowest, may_grant
from pipelines.identity.records import API_KEYS
from pipelines.identity.tokens import API_KEY_PREFIX, MAX_TOKEN_CHARS, digest, new_secret
from pipelines.paging import fetch_page

PREFIX_CHARS = 10
# `last_used_at` is written at most this often per key: one write per request would
# make every scripted call a database write.
LAST_USED_RESOLUTION_S = 60.0

declare_indexes(API_KEYS, [
    IndexModel("hash", unique=True),
    IndexModel([("studio_id", 1), ("created_at_s", 1)]),
])


def _invalid_key() -> Unauthenticated:
    return Unauthenticated("the API key is not valid", code="invalid_api_key")


class ApiKeys:
    def __init__(self, keys: Any, users: Any, audit: AuditLog,
                 clock: Callable[[], float] = time.time):
        self.keys = keys
        self.users = users
        self.audit = audit
        self.clock = clock

    @db_errors
    async def create(self, principal: Principal, req: ApiKeyCreate) -> ApiKeyCreated:
        role = req.role or principal.role
        if not may_grant(principal.role, role):
            raise Forbidden("a key may not have a role above yours", code="role_too_high")
        now = self.clock()
        secret = new_secret(API_KEY_PREFIX)
        expires = now + req.expires_in_days * 86400 if req.expires_in_days else None
        doc = {
            "_id": new_id(), "hash": digest(secret), "prefix": secret[:PREFIX_CHARS],
            "studio_id": principal.studio_id, "user_id": principal.user_id, "name": req.name,
            "role": str(role), "created_at_s": now, "expires_at_s": expires,
            "last_used_at_s": None, "revoked": False,
        }
        await self.keys.insert_one(doc)
        await self.audit.record(principal.studio_id, events.KEY_CREATED, actor=principal.actor(),
                                target={"type": "api_key", "id": doc["_id"]},
                                details={"role": doc["role"], "name": req.name})
        return ApiKeyCreated(**ApiKeyOut.of(doc).model_dump(), key=secret)

    def _scope(self, principal: Principal) -> dict[str, Any]:
        query: dict[str, Any] = {"studio_id": principal.studio_id, "revoked": False}
        if not can(principal.role, Action.API_KEY_MANAGE_ALL, via_api_key=principal.via_api_key):
            query["user_id"] = principal.user_id
        return query

    @db_errors
    async def list(self, principal: Principal, *, limit: int,
                   cursor: str | None) -> Page[ApiKeyOut]:
        docs, next_cursor = await fetch_page(self.keys, self._scope(principal), "created_at_s",
                                             limit=limit, cursor=cursor)
        return Page[ApiKeyOut](items=[ApiKeyOut.of(d) for d in docs], next_cursor=next_cursor)

    @db_errors
    async def revoke(self, principal: Principal, key_id: str) -> None:
        doc = await self.keys.find_one_and_update(
            self._scope(principal) | {"_id": key_id},
            {"$set": {"revoked": True, "revoked_at_s": self.clock()}},
        )
        if doc is None:
            raise NotFound("no such API key", code="api_key_not_found")
        await self.audit.record(principal.studio_id, events.KEY_REVOKED, actor=principal.actor(),
                                target={"type": "api_key", "id": key_id},
                                details={"owner_id": doc["user_id"]})

    @db_errors
    async def authenticate(self, secret: str) -> Principal:
        if len(secret) > MAX_TOKEN_CHARS:
            raise _invalid_key()
        now = self.clock()
        doc = await self.keys.find_one({"hash": digest(secret), "revoked": False})
        if doc is None or (doc["expires_at_s"] is not None and doc["expires_at_s"] <= now):
            raise _invalid_key()
        owner = await self.users.find_one({"_id": doc["user_id"], "studio_id": doc["studio_id"]})
        if owner is None or not owner["active"]:
            raise _invalid_key()
        if now - (doc["last_used_at_s"] or 0.0) >= LAST_USED_RESOLUTION_S:
            # Only the request that moves `last_used_at` writes the audit entry: a script's
            # use is on record once per resolution, not once per call.
            moved = await self.keys.update_one(
                {"_id": doc["_id"], "last_used_at_s": doc["last_used_at_s"]},
                {"$set": {"last_used_at_s": now}})
            if moved.modified_count:
                await self.audit.record(doc["studio_id"], events.KEY_USED,
                                        actor={"user_id": owner["_id"], "kind": "api_key",
                                               "key_id": doc["_id"]},
                                        target={"type": "api_key", "id": doc["_id"]},
                                        details={"name": doc["name"]})
        return Principal(user_id=owner["_id"], studio_id=doc["studio_id"],
                         role=lowest(doc["role"], owner["role"]), kind="api_key",
                         key_id=doc["_id"])
