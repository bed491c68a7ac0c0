"""From a bearer credential to a Principal, or Unauthenticated.

Every request re-reads the user (and the session or key), so deactivation, a role change,
a password change or a logout takes effect on the next request on every replica. There
is no cache: the cost is one or two lookups by primary key.
"""

from __future__ import annotations

from typing import Any

from pipelines.db import db_errors
from pipelines.errors import Forbidden, Unauthenticated
from pipelines.identity.api_keys import ApiKeys
from pipelines.identity.models import Principal
from pipelines.identity.sessions import Sessions
from pipelines.identity.tokens import API_KEY_PREFIX, AccessTokens


def email_unverified() -> Forbidden:
    return Forbidden("confirm your email first: enter the code we sent you "
                     "(POST /api/v1/auth/verify)", code="email_unverified")


def verified(principal: Principal) -> Principal:
    """For what an unconfirmed account may not use at all (live events)."""
    if not principal.email_verified:
        raise email_unverified()
    return principal


def _revoked() -> Unauthenticated:
    return Unauthenticated("the access token is no longer valid; log in again",
                           code="token_revoked")


class Authenticator:
    def __init__(self, access: AccessTokens, users: Any, sessions: Sessions, keys: ApiKeys):
        self.access = access
        self.users = users
        self.sessions = sessions
        self.keys = keys

    @db_errors
    async def authenticate(self, bearer: str | None) -> Principal:
        if not bearer:
            raise Unauthenticated("credentials are required: send `Authorization: Bearer "
                                  "<access token or API key>`", code="unauthenticated")
        if bearer.startswith(API_KEY_PREFIX):
            return await self.keys.authenticate(bearer)
        claims = self.access.verify(bearer)
        user = await self.users.find_one(
            {"_id": claims.user_id, "studio_id": claims.studio_id},
            {"active": 1, "role": 1, "tokens_valid_after_s": 1, "email_verified": 1},
        )
        if user is None or not user["active"] or user["role"] != claims.role:
            raise _revoked()
        if claims.issued_at < user.get("tokens_valid_after_s", 0.0):
            raise _revoked()
        if not await self.sessions.is_active(claims.session_id):
            raise _revoked()
        return Principal(user_id=claims.user_id, studio_id=claims.studio_id, role=claims.role,
                         kind="session", session_id=claims.session_id,
                         email_verified=user.get("email_verified", True))
