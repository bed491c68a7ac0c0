"""Sessions: a family of rotating refresh tokens, plus the access tokens issued from it.

Rotation is one atomic `find_one_and_update` from `active` to `rotated`: of two requests
presenting the same token, exactly one wins. Any later presentation of a rotated token is
a replay (the token was copied, or two clients share it) and revokes the whole family,
including the newest token and every access token carrying the family's `sid`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pymongo import IndexModel

from pipelines.db import db_errors, declare_indexes, new_id, purge_date
from pipelines.errors import Unauthenticated
from pipelines.identity import audit as events
from pipelines.identity.audit import AuditLog
from pipelines.identity.models import TokenPair
from pipelines.identity.records import FAMILIES, REFRESH_TOKENS
from pipelines.identity.tokens import REFRESH_PREFIX, AccessTokens, digest, new_secret

ACTIVE, ROTATED, REVOKED = "active", "rotated", "revoked"

declare_indexes(FAMILIES, [IndexModel("user_id"), IndexModel("purge_at", expireAfterSeconds=0)])
declare_indexes(REFRESH_TOKENS, [
    IndexModel("family_id"), IndexModel("user_id"), IndexModel("purge_at", expireAfterSeconds=0),
])


def _refused(message: str, code: str) -> Unauthenticated:
    return Unauthenticated(message, code=code)


class Sessions:
    def __init__(self, families: Any, tokens: Any, users: Any, access: AccessTokens,
                 audit: AuditLog, *, ttl_s: int, idle_s: int,
                 clock: Callable[[], float] = time.time):
        self.families = families
        self.tokens = tokens
        self.users = users
        self.access = access
        self.audit = audit
        self.ttl_s = ttl_s
        self.idle_s = idle_s
        self.clock = clock

    @db_errors
    async def start(self, user: dict[str, Any]) -> TokenPair:
        """A new family for a fresh login: its absolute lifetime starts now."""
        now = self.clock()
        family = {
            "_id": new_id(), "user_id": user["_id"], "studio_id": user["studio_id"],
            "state": ACTIVE, "created_at_s": now, "expires_at_s": now + self.ttl_s,
            "purge_at": purge_date(now + self.ttl_s),
        }
        await self.families.insert_one(family)
        return await self._issue(user, family, now)

    async def _issue(self, user: dict[str, Any], family: dict[str, Any], now: float) -> TokenPair:
        secret = new_secret(REFRESH_PREFIX)
        idle_until = min(now + self.idle_s, family["expires_at_s"])
        await self.tokens.insert_one({
            "_id": digest(secret), "family_id": family["_id"], "user_id": user["_id"],
            "studio_id": user["studio_id"], "state": ACTIVE, "issued_at_s": now,
            "idle_until_s": idle_until, "purge_at": family["purge_at"],
        })
        access, _ = self.access.issue(user_id=user["_id"], studio_id=user["studio_id"],
                                      role=user["role"], session_id=family["_id"])
        return TokenPair(access_token=access, refresh_token=secret,
                         expires_in=self.access.ttl_s,
                         refresh_expires_in=max(0, int(idle_until - now)))

    @db_errors
    async def rotate(self, secret: str, client: str | None = None) -> TokenPair:
        now = self.clock()
        key = digest(secret)
        won = await self.tokens.find_one_and_update(
            {"_id": key, "state": ACTIVE, "idle_until_s": {"$gt": now}},
            {"$set": {"state": ROTATED, "rotated_at_s": now}},
        )
        if won is None:
            raise await self._why_refused(key, client)
        family = await self.families.find_one({"_id": won["family_id"], "state": ACTIVE})
        if family is None or family["expires_at_s"] <= now:
            raise _refused("the session has ended; log in again", "refresh_token_revoked")
        user = await self.users.find_one({"_id": won["user_id"], "studio_id": won["studio_id"]})
        if user is None or not user["active"]:
            await self.revoke_family(family["_id"], "user_inactive", actor=None, client=client)
            raise _refused("the session has ended; log in again", "refresh_token_revoked")
        return await self._issue(user, family, now)

    async def _why_refused(self, key: str, client: str | None) -> Unauthenticated:
        doc = await self.tokens.find_one({"_id": key})
        if doc is None:
            return _refused("the refresh token is not valid", "invalid_refresh_token")
        if doc["state"] == ROTATED:
            await self.revoke_family(doc["family_id"], "refresh_token_reused",
                                     actor=None, client=client)
            return _refused("the refresh token was already used; the session is revoked",
                            "refresh_token_reused")
        if doc["state"] == ACTIVE:
            return _refused("the refresh token has expired; log in again",
                            "refresh_token_expired")
        return _refused("the session has ended; log in again", "refresh_token_revoked")

    @db_errors
    async def logout(self, secret: str, client: str | None = None) -> None:
        """Revokes the family of any token of it, rotated ones included. Unknown: no-op."""
        doc = await self.tokens.find_one({"_id": digest(secret)})
        if doc is not None:
            await self.revoke_family(doc["family_id"], "logout",
                                     actor={"user_id": doc["user_id"], "kind": "session"},
                                     client=client)

    @db_errors
    async def revoke_family(self, family_id: str, reason: str, *,
                            actor: dict[str, Any] | None, client: str | None) -> bool:
        now = self.clock()
        family = await self.families.find_one_and_update(
            {"_id": family_id, "state": ACTIVE},
            {"$set": {"state": REVOKED, "revoked_at_s": now, "revoked_reason": reason}},
        )
        # Always sweep: a successor inserted by a concurrent rotation must die too.
        await self.tokens.update_many({"family_id": family_id, "state": ACTIVE},
                                      {"$set": {"state": REVOKED}})
        if family is not None:
            await self.audit.record(family["studio_id"], events.FAMILY_REVOKED, actor=actor,
                                    target={"type": "user", "id": family["user_id"]},
                                    client=client, details={"family_id": family_id,
                                                            "reason": reason})
        return family is not None

    @db_errors
    async def revoke_all_for_user(self, user: dict[str, Any], reason: str, *,
                                  actor: dict[str, Any] | None) -> int:
        now = self.clock()
        result = await self.families.update_many(
            {"user_id": user["_id"], "state": ACTIVE},
            {"$set": {"state": REVOKED, "revoked_at_s": now, "revoked_reason": reason}},
        )
        await self.tokens.update_many({"user_id": user["_id"], "state": ACTIVE},
                                      {"$set": {"state": REVOKED}})
        if result.modified_count:
            await self.audit.record(user["studio_id"], events.FAMILY_REVOKED, actor=actor,
                                    target={"type": "user", "id": user["_id"]},
                                    details={"families": result.modified_count,
                                             "reason": reason})
        return int(result.modified_count)

    @db_errors
    async def is_active(self, family_id: str) -> bool:
        family = await self.families.find_one({"_id": family_id, "state": ACTIVE},
                                              {"expires_at_s": 1})
        return family is not None and family["expires_at_s"] > self.clock()
