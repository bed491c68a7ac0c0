"""Confirming a user's email with a 6-digit code: single use, expiring, five tries.

The only module that writes `email_codes`. A code is kept
as an HMAC under the server's secret, never as itself. A new code may be asked for once a
minute; the sixth wrong guess needs a new code.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from pymongo import IndexModel, ReturnDocument

from pipelines.db import db_errors, declare_indexes, purge_date
from pipelines.errors import FarmError, InvalidInput, NotFound, RateLimited
from pipelines.identity import audit as events
from pipelines.identity.account_mail import AccountMail
from pipelines.identity.audit import AuditLog
from pipelines.identity.models import Principal, UserOut

CODES = "email_codes"
CODE_TTL_S = 30 * 60
MAX_TRIES = 5
RESEND_AFTER_S = 60

declare_indexes(CODES, [IndexModel("purge_at", expireAfterSeconds=0)])
log = logging.getLogger("farm.identity")


def _wrong(message: str, code: str) -> InvalidInput:
    return InvalidInput(message, code=code, details=[
        {"loc": ["body", "code"], "msg": message, "type": code}])


class EmailVerification:
    def __init__(self, codes: Any, users: Any, studios: Any, mail: AccountMail,
                 audit: AuditLog, secret: str, *, required: bool,
                 clock: Callable[[], float] = time.time):
        self.codes, self.users, self.studios, self.mail = codes, users, studios, mail
        self.audit, self.secret, self.required, self.clock = audit, secret.encode(), required, clock

    def _digest(self, user_id: str, code: str) -> str:
        return hmac.new(self.secret, f"{user_id}:{code}".encode(), hashlib.sha256).hexdigest()

    async def start(self, user: dict[str, Any], studio: dict[str, Any]) -> None:
        """A new account's first code, when accounts confirm their email. The account is
        made either way: a code that could not be queued is asked for again."""
        if not self.required or user.get("email_verified", True):
            return
        try:
            await self._send(user, studio)
        except FarmError as exc:
            log.warning("verification code not queued: %s", exc.message)

    @db_errors
    async def resend(self, principal: Principal) -> None:
        user = await self._user(principal)
        if user.get("email_verified", True):
            raise _wrong("this email is confirmed already", "already_verified")
        previous = await self.codes.find_one({"_id": user["_id"]}, {"sent_at_s": 1})
        wait = (previous["sent_at_s"] + RESEND_AFTER_S - self.clock()) if previous else 0
        if wait > 0:
            raise RateLimited("a code was sent less than a minute ago; check your mail",
                              retry_after_s=int(wait) + 1, code="code_sent_recently")
        await self._send(user, await self._studio(user["studio_id"]))

    async def _send(self, user: dict[str, Any], studio: dict[str, Any]) -> None:
        code = f"{secrets.randbelow(10**6):06d}"
        now = self.clock()
        expires = now + CODE_TTL_S
        await self.codes.replace_one({"_id": user["_id"]}, {
            "_id": user["_id"], "digest": self._digest(user["_id"], code), "tries": 0,
            "sent_at_s": now, "expires_at_s": expires, "purge_at": purge_date(expires)},
            upsert=True)
        await self.mail.verification_code(user, studio, code, expires)

    @db_errors
    async def verify(self, principal: Principal, code: str) -> UserOut:
        user = await self._user(principal)
        if user.get("email_verified", True):
            return UserOut.of(user)  # a second click, or a code entered twice
        # The try is counted before the comparison: parallel guesses cannot share one.
        doc = await self.codes.find_one_and_update(
            {"_id": user["_id"], "tries": {"$lt": MAX_TRIES},
             "expires_at_s": {"$gt": self.clock()}},
            {"$inc": {"tries": 1}}, return_document=ReturnDocument.AFTER)
        if doc is None:
            if await self.codes.count_documents({"_id": user["_id"],
                                                 "expires_at_s": {"$gt": self.clock()}}):
                raise RateLimited("too many wrong codes: ask for a new one",
                                  retry_after_s=1, code="too_many_tries")
            raise _wrong("the code expired or was never sent: ask for a new one",
                         "code_expired")
        if not hmac.compare_digest(doc["digest"], self._digest(user["_id"], code)):
            raise _wrong(f"wrong code ({MAX_TRIES - doc['tries']} tries left)", "wrong_code")
        await self.codes.delete_one({"_id": user["_id"]})
        await self.users.update_one({"_id": user["_id"]}, {"$set": {
            "email_verified": True, "updated_at_s": self.clock()}})
        await self.audit.record(user["studio_id"], events.EMAIL_VERIFIED,
                                actor=principal.actor(), target={"type": "user", "id": user["_id"]})
        return UserOut.of(user | {"email_verified": True})

    async def forget(self, user_id: str) -> None:
        """A link that reached the inbox (an invitation, a reset) proved the address: any
        code still out is void."""
        await self.codes.delete_one({"_id": user_id})

    async def _user(self, principal: Principal) -> dict[str, Any]:
        user = await self.users.find_one({"_id": principal.user_id,
                                          "studio_id": principal.studio_id})
        if user is None:
            raise NotFound("no such user", code="user_not_found")
        return user

    async def _studio(self, studio_id: str) -> dict[str, Any]:
        return await self.studios.find_one({"_id": studio_id}) or {"name": "your studio"}
