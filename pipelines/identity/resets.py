"""Forgotten passwords: a request by studio and email, a single-use link by email, a new
password through it.

A request answers the same, in the same time, whether the account exists or not: the
request only stores what was asked (one insert, either way), and the mail worker looks
the account up afterwards (`process`). The only module that writes `password_resets`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pymongo import IndexModel, ReturnDocument

from pipelines.db import db_errors, declare_indexes, new_id, purge_date
from pipelines.identity import audit as events
from pipelines.identity.account_mail import AccountMail
from pipelines.identity.links import digest, link_invalid, new_token
from pipelines.identity.mail_models import PasswordResetConfirm, PasswordResetRequest
from pipelines.identity.sessions import Sessions
from pipelines.identity.users import Users

RESETS = "password_resets"
LINK_TTL_S = 3600
KEPT_S = 7 * 24 * 3600
MAX_LINKS_PER_HOUR = 3  # per account: more requests are taken and send nothing
CLAIM_S = 60.0

declare_indexes(RESETS, [
    IndexModel([("state", 1), ("requested_at_s", 1)]),
    IndexModel("digest"),
    IndexModel([("user_id", 1), ("requested_at_s", 1)]),
    IndexModel("purge_at", expireAfterSeconds=0),
])


class PasswordResets:
    def __init__(self, resets: Any, users: Users, sessions: Sessions, mail: AccountMail,
                 clock: Callable[[], float] = time.time):
        self.resets, self.users, self.sessions = resets, users, sessions
        self.mail, self.clock = mail, clock

    @db_errors
    async def request(self, req: PasswordResetRequest, client: str) -> None:
        now = self.clock()
        await self.resets.insert_one({
            "_id": new_id(), "slug": req.studio.strip().lower(),
            "email": req.email.strip().lower(), "client": client, "state": "requested",
            "requested_at_s": now, "claimed_at_s": None, "purge_at": purge_date(now + KEPT_S)})

    @db_errors
    async def process(self, most: int = 20) -> int:
        """Turn waiting requests into emailed links (or nothing, for no such account);
        how many links went out."""
        sent = 0
        for _ in range(most):
            now = self.clock()
            doc = await self.resets.find_one_and_update(
                {"$or": [{"state": "requested"},
                         {"state": "claimed", "claimed_at_s": {"$lt": now - CLAIM_S}}]},
                {"$set": {"state": "claimed", "claimed_at_s": now}},
                sort=[("requested_at_s", 1)], return_document=ReturnDocument.AFTER)
            if doc is None:
                break
            sent += await self._answer(doc)
        return sent

    async def _answer(self, doc: dict[str, Any]) -> int:
        studio = await self.users.studios.find_one({"slug": doc["slug"]})
        user = None
        if studio is not None:
            user = await self.users.users.find_one({"studio_id": studio["_id"],
                                                    "email": doc["email"]})
        now = self.clock()
        if studio is None or user is None or not user["active"] or user.get("invited"):
            await self._end(doc, "void", "no such account")
            return 0
        recent = await self.resets.count_documents({
            "user_id": user["_id"], "state": {"$in": ["sent", "used", "superseded"]},
            "requested_at_s": {"$gt": now - 3600}})
        if recent >= MAX_LINKS_PER_HOUR:
            await self._end(doc, "void", "too many links this hour")
            return 0
        token, token_digest = new_token()
        expires = now + LINK_TTL_S
        await self.resets.update_one({"_id": doc["_id"]}, {"$set": {
            "state": "sent", "user_id": user["_id"], "studio_id": studio["_id"],
            "digest": token_digest, "expires_at_s": expires}})
        await self.mail.password_reset(user, studio, token, expires)
        return 1

    async def _end(self, doc: dict[str, Any], state: str, why: str) -> None:
        await self.resets.update_one({"_id": doc["_id"]}, {"$set": {"state": state,
                                                                    "why": why}})

    @db_errors
    async def confirm(self, req: PasswordResetConfirm, client: str) -> None:
        # Hashed first, whatever the token: a refused link costs what a good one does.
        password_hash = await self.users.hasher.hash(req.new_password)
        now = self.clock()
        doc = await self.resets.find_one_and_update(
            {"digest": digest(req.token), "state": "sent", "expires_at_s": {"$gt": now}},
            {"$set": {"state": "used", "used_at_s": now}})
        if doc is None:
            raise link_invalid()
        user = await self.users.users.find_one({"_id": doc["user_id"],
                                                "studio_id": doc["studio_id"]})
        if user is None or not user["active"]:
            raise link_invalid()
        await self.users.reset_password(user, password_hash)
        # The other links of this account stop working with this one.
        await self.resets.update_many({"user_id": user["_id"], "state": "sent"},
                                      {"$set": {"state": "superseded"}})
        actor = {"user_id": user["_id"], "kind": "reset_link"}
        await self.sessions.revoke_all_for_user(user, "password_reset", actor=actor)
        await self.users.audit.record(user["studio_id"], events.PASSWORD_RESET, actor=actor,
                                      target={"type": "user", "id": user["_id"]}, client=client)
        await self.mail.password_changed(user, await self.users.studio(user["studio_id"]))
