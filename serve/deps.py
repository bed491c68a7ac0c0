"""Shared dependencies: who is calling, may they do this, where from, which page.

Handlers never read roles or studio ids from the request: `require(action)` gives them a
Principal built from a verified credential, after asking the permission table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipelines.errors import Forbidden
from pipelines.identity.authn import email_unverified
from pipelines.identity.models import Principal
from pipelines.identity.permissions import SESSION_ONLY, UNVERIFIED_MAY, Action, can
from pipelines.identity.service import Identity
from pipelines.paging import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_CURSOR_CHARS, MAX_LIMIT

_bearer = HTTPBearer(
    auto_error=False,
    description="An access token from /api/v1/auth/login, or an API key (`sfk_...`).",
)


def get_identity(request: Request) -> Identity:
    return request.app.state.platform.identity


IdentityDep = Annotated[Identity, Depends(get_identity)]


async def current_principal(
    identity: IdentityDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return await identity.authenticator.authenticate(
        credentials.credentials if credentials else None
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(action: Action) -> Any:
    """`principal: Principal = require(Action.X)`: authenticated and allowed, or 401/403."""

    async def allowed(principal: CurrentPrincipal) -> Principal:
        if not principal.email_verified and action not in UNVERIFIED_MAY:
            raise email_unverified()
        if can(principal.role, action, via_api_key=principal.via_api_key):
            return principal
        if principal.via_api_key and action in SESSION_ONLY:
            raise Forbidden("an API key may not do this; log in", code="session_required")
        raise Forbidden("your role may not do this", code="forbidden")

    return Depends(allowed)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]


Cursor = Annotated[str | None, Query(
    min_length=4, max_length=MAX_CURSOR_CHARS, pattern=CURSOR_PATTERN,
    description="`next_cursor` of the previous page, unchanged (opaque); a cursor the "
                "server did not make is refused (422 `invalid_cursor`).")]


@dataclass(frozen=True)
class PageQuery:
    limit: int
    cursor: str | None


def page_query(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> PageQuery:
    return PageQuery(limit, cursor)


PageParams = Annotated[PageQuery, Depends(page_query)]
