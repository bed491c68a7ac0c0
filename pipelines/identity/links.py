"""Single-use links sent by email (invitations, password resets): a random token in the
link, only its SHA-256 kept. Every refused link gets the same answer, whatever the
reason: unknown, used, revoked or expired."""

from __future__ import annotations

import hashlib
import secrets

from pipelines.errors import InvalidInput

TOKEN_BYTES = 32


def new_token() -> tuple[str, str]:
    """(the token for the link, the digest to store)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, digest(token)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def link_invalid() -> InvalidInput:
    return InvalidInput("this link is not valid any more (used, revoked or expired): ask for "
                        "a new one", code="link_invalid",
                        details=[{"loc": ["body", "token"], "msg": "not valid",
                                  "type": "link_invalid"}])
