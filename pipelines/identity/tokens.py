"""Access tokens (JWT, HS256 only) and the opaque secrets: refresh tokens and API keys.

Opaque secrets carry a prefix (`sfr_` refresh, `sfk_` API key) so a leaked one is easy to
recognise in logs and secret scanners, and so a bearer value is routed without guessing.
Only their SHA-256 digest is stored: the secrets have 256 bits of entropy, so a fast hash
is enough (bcrypt is for low-entropy passwords).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from pipelines.errors import Unauthenticated
from pipelines.identity.permissions import Role

ALGORITHMS = ["HS256"]  # pinned: the header's `alg` is never trusted
ACCESS_TYPE = "access"
REFRESH_PREFIX = "sfr_"
API_KEY_PREFIX = "sfk_"
MAX_TOKEN_CHARS = 4096
REQUIRED_CLAIMS = ["sub", "studio_id", "role", "jti", "iss", "aud", "typ", "iat", "exp", "sid"]


def ms_floor(epoch_s: float) -> float:
    """Millisecond resolution, the same way for token `iat` and per-user cutoffs."""
    return math.floor(epoch_s * 1000) / 1000


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    studio_id: str
    role: Role
    jti: str
    issued_at: float
    expires_at: float
    session_id: str


def _invalid(message: str = "the access token is not valid") -> Unauthenticated:
    return Unauthenticated(message, code="invalid_token")


class AccessTokens:
    """Issues and verifies access tokens; `exp` and `iat` are checked against `clock`."""

    def __init__(self, secret: str, issuer: str, audience: str, ttl_s: int,
                 clock: Callable[[], float] = time.time, leeway_s: float = 5.0):
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s
        self.clock = clock
        self.leeway_s = leeway_s

    def issue(self, *, user_id: str, studio_id: str, role: Role,
              session_id: str) -> tuple[str, AccessClaims]:
        # `iat` keeps milliseconds: a per-user cutoff set in the same second as a login
        # must not reject the token issued just after it.
        now = ms_floor(self.clock())
        claims = AccessClaims(user_id, studio_id, Role(role), uuid.uuid4().hex, now,
                              now + self.ttl_s, session_id)
        payload: dict[str, Any] = {
            "sub": user_id, "studio_id": studio_id, "role": str(role), "jti": claims.jti,
            "iss": self.issuer, "aud": self.audience, "typ": ACCESS_TYPE,
            "iat": now, "exp": claims.expires_at, "sid": session_id,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHMS[0]), claims

    def verify(self, token: str) -> AccessClaims:
        if len(token) > MAX_TOKEN_CHARS:
            raise _invalid()
        try:
            payload = jwt.decode(
                token, self._secret, algorithms=ALGORITHMS,
                audience=self.audience, issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS, "strict_aud": True,
                         # checked below against the injected clock
                         "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError as exc:
            raise _invalid() from exc
        return self._check_claims(payload)

    def _check_claims(self, payload: dict[str, Any]) -> AccessClaims:
        # Exact comparisons again, independent of the library's own checks.
        if payload.get("typ") != ACCESS_TYPE:
            raise _invalid("not an access token")
        if payload.get("iss") != self.issuer or payload.get("aud") != self.audience:
            raise _invalid()
        iat, exp = payload.get("iat"), payload.get("exp")
        if not (_is_number(iat) and _is_number(exp)):
            raise _invalid()
        issued_at, expires_at = float(iat), float(exp)  # type: ignore[arg-type]
        now = self.clock()
        if now >= expires_at:
            raise Unauthenticated("the access token has expired", code="token_expired")
        if issued_at > now + self.leeway_s or expires_at - issued_at > self.ttl_s + self.leeway_s:
            raise _invalid()
        fields = (payload.get("sub"), payload.get("studio_id"), payload.get("jti"),
                  payload.get("sid"))
        if not all(isinstance(value, str) and value for value in fields):
            raise _invalid()
        try:
            role = Role(str(payload.get("role")))
        except ValueError as exc:
            raise _invalid() from exc
        return AccessClaims(payload["sub"], payload["studio_id"], role, payload["jti"],
                            issued_at, expires_at, payload["sid"])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
