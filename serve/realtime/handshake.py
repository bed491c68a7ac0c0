"""Admission of a WebSocket: origin, credential, and where the client resumes.

- `Origin` must be in FARM_CORS_ORIGINS when present. Browsers always send it, so a page
  of another site cannot ride a user's credentials (cross-site WebSocket hijacking); a
  missing Origin is a non-browser client (the SDK, scripts), which has no ambient
  credentials to abuse, so it is admitted like any HTTP client.
- A credential in the query string is refused outright: URLs end up in proxy and access
  logs. Browsers send it as `Sec-WebSocket-Protocol: bearer, <token>` (the server echoes
  only `bearer`); anyone may instead send `{"type": "auth", "token": ...}` first, within
  FARM_WS_AUTH_TIMEOUT_S of the upgrade.
- A refusal before the upgrade answers in the HTTP error contract when the server supports
  denial responses (403 origin, 400 query token, 401 credential, 503 dependency), else 403.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import WebSocket
from pydantic import ValidationError

from pipelines.errors import (
    DependencyUnavailable,
    FarmError,
    Forbidden,
    InvalidInput,
    Unauthenticated,
)
from pipelines.identity.authn import verified
from pipelines.identity.models import Principal
from serve.errors import error_response, status_for
from serve.realtime import messages as protocol

if TYPE_CHECKING:
    from serve.platform import Platform

BEARER = "bearer"
QUERY_SECRETS = frozenset({"token", "access_token", "api_key", "apikey", "key", "bearer",
                           "jwt", "auth", "authorization"})


@dataclass(frozen=True)
class Admitted:
    principal: Principal
    credential: str
    resume_from: int | None
    by_message: bool = False  # the auth message was the client's first message


async def refuse(ws: WebSocket, exc: FarmError) -> None:
    """Before the upgrade: an HTTP answer in the error contract (or a bare 403)."""
    response = error_response(status_for(exc), exc.code, exc.message, exc.details)
    try:
        await ws.send_denial_response(response)
    except RuntimeError:  # the server cannot send denial responses
        await ws.close(1008)


def _resume_query(ws: WebSocket) -> int | None:
    raw = ws.query_params.get("last_seq")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput("last_seq must be a sequence number", code="invalid_last_seq")
    return int(raw)


def _check_request(ws: WebSocket, allowed_origins: list[str]) -> int | None:
    origin = ws.headers.get("origin")
    if origin is not None and origin.rstrip("/") not in allowed_origins:
        raise Forbidden("this origin may not open a socket", code="origin_not_allowed")
    if QUERY_SECRETS & {name.lower() for name in ws.query_params}:
        raise FarmError("send credentials in Sec-WebSocket-Protocol or an auth message, "
                        "never in the URL", code="token_in_query")  # 400
    return _resume_query(ws)


def offered_token(ws: WebSocket) -> str | None:
    """`Sec-WebSocket-Protocol: bearer, <token>` -> the token (None when not offered)."""
    offered = list(ws.scope.get("subprotocols") or [])
    if BEARER not in offered:
        return None
    others = [item for item in offered if item != BEARER]
    return others[0] if others else ""


async def admit(ws: WebSocket, platform: Platform) -> Admitted | None:
    """Authenticated and accepted, or refused (and closed): None."""
    try:
        resume_from = _check_request(ws, platform.settings.cors_origins)
        token = offered_token(ws)
        if token is not None:
            principal = verified(await platform.identity.authenticator.authenticate(token))
    except FarmError as exc:
        await refuse(ws, exc)
        return None
    if token is not None:
        await ws.accept(subprotocol=BEARER)
        return Admitted(principal, token, resume_from)
    await ws.accept()
    return await _auth_message(ws, platform, resume_from)


async def _auth_message(ws: WebSocket, platform: Platform,
                        resume_from: int | None) -> Admitted | None:
    settings = platform.settings
    try:
        message = await asyncio.wait_for(ws.receive(), settings.ws_auth_timeout_s)
    except TimeoutError:
        await ws.close(4401, "auth_timeout")
        return None
    text = message.get("text")
    if message["type"] != "websocket.receive" or text is None:
        await ws.close(4401, "unauthenticated")
        return None
    if len(text) > settings.ws_max_message_bytes:
        await ws.close(1009, "message too big")
        return None
    try:
        auth = protocol.parse(json.loads(text))
        if not isinstance(auth, protocol.Auth):
            raise Unauthenticated("authenticate first", code="unauthenticated")
        principal = verified(await platform.identity.authenticator.authenticate(auth.token))
    except DependencyUnavailable as exc:
        await ws.close(1011, exc.code)
        return None
    except (ValueError, ValidationError, FarmError) as exc:
        await ws.close(4401, exc.code if isinstance(exc, FarmError) else "unauthenticated")
        return None
    resume = auth.last_seq if auth.last_seq is not None else resume_from
    return Admitted(principal, auth.token, resume, by_message=True)
