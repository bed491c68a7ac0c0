"""Password login: throttled, timing-flat, audited."""

from __future__ import annotations

from typing import Any

from pipelines.db import db_errors
from pipelines.errors import Unauthenticated
from pipelines.identity import audit as events
from pipelines.identity.accounts import AccountService
from pipelines.identity.models import AuthResult, LoginRequest, StudioOut, UserOut

# One message for an unknown studio, an unknown email, a wrong password and a
# deactivated account: none of them may be told apart from outside.
INVALID_CREDENTIALS = "wrong studio, email or password"


class Login(AccountService):

    @db_errors
    async def login(self, req: LoginRequest, client: str) -> AuthResult:
        slug, email = req.studio.strip().lower(), req.email.strip().lower()
        # Throttled before anything else: a refused attempt costs no bcrypt and says nothing.
        reservation = await self.throttle.reserve(slug, email, client)
        studio = await self.studios.find_one({"slug": slug})
        user = None
        if studio is not None:
            user = await self.users.find_one({"studio_id": studio["_id"], "email": email})
        hashed = user["password_hash"] if user else None
        valid = await self.hasher.verify(req.password, hashed)  # runs for unknown users too
        if not valid or studio is None or user is None or not user["active"]:
            await self._failed(studio, user, email, client)
            raise Unauthenticated(INVALID_CREDENTIALS, code="invalid_credentials")
        await self.throttle.release(reservation)
        await self._succeeded(user, req.password, client)
        pair = await self.sessions.start(user)
        return AuthResult(**pair.model_dump(), user=UserOut.of(user), studio=StudioOut.of(studio))

    async def _failed(self, studio: dict[str, Any] | None, user: dict[str, Any] | None,
                      email: str, client: str) -> None:
        if studio is None:
            return  # no tenant to tell; the failure still counts against the address
        target = {"type": "user", "id": user["_id"]} if user else {"type": "email", "id": email}
        reason = "inactive" if user and not user["active"] else "bad_credentials"
        await self.audit.record(studio["_id"], events.LOGIN_FAILED, actor=None, target=target,
                                client=client, details={"reason": reason})

    async def _succeeded(self, user: dict[str, Any], password: str, client: str) -> None:
        changes: dict[str, Any] = {"last_login_at_s": self.clock()}
        if self.hasher.needs_rehash(user["password_hash"]):
            # The cost factor was raised since this hash was made: upgrade it now.
            changes["password_hash"] = await self.hasher.hash(password)
        await self.users.update_one({"_id": user["_id"]}, {"$set": changes})
        user.update(changes)
        await self.audit.record(user["studio_id"], events.LOGIN,
                                actor={"user_id": user["_id"], "kind": "session"},
                                target={"type": "user", "id": user["_id"]}, client=client)
