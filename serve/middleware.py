"""Pure ASGI middleware: request id, security headers, last-resort errors, limits, metrics.

Pure ASGI (not BaseHTTPMiddleware) so streaming bodies and WebSockets pass untouched and
so a crash inside any route still leaves through the error contract with our headers.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pymongo
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines.context import accept_request_id, request_id_var
from pipelines.errors import FarmError
from pipelines.identity.tokens import API_KEY_PREFIX
from serve.errors import error_response
from serve.metrics import HttpMetrics

log = logging.getLogger("farm.http")

_DOCS_PREFIXES = ("/docs", "/redoc")
_STREAMED_TYPES = ("multipart/form-data", "application/octet-stream")


def app_path(scope: Scope) -> str:
    """The path below the application's mount point (Serve's route_prefix is a root_path)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] or "/" if root and path.startswith(root) else path


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, echo_request_id: bool = True,
                 trust_forwarded_proto: bool = False, metrics: HttpMetrics | None = None):
        self.app = app
        self.echo_request_id = echo_request_id
        self.trust_forwarded_proto = trust_forwarded_proto
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        token = request_id_var.set(accept_request_id(headers.get("x-request-id")))
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
            else:
                await self._http(scope, receive, send, headers)
        finally:
            request_id_var.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        started = time.perf_counter()
        state = {"status": 500, "started": False}
        https = scope.get("scheme") == "https" or (
            self.trust_forwarded_proto and headers.get("x-forwarded-proto") == "https"
        )

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                self._decorate(MutableHeaders(scope=message), app_path(scope), https)
            await send(message)

        if self.metrics:
            self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not state["started"]:
                response = error_response(500, "internal_error", "internal server error")
                await response(scope, receive, send_wrapper)
        finally:
            if self.metrics:
                self.metrics.in_flight.dec()
                self.metrics.observe(scope, state["status"], time.perf_counter() - started)

    def _decorate(self, out: MutableHeaders, path: str, https: bool) -> None:
        if self.echo_request_id and "x-request-id" not in out:
            out["X-Request-ID"] = request_id_var.get() or ""
        out.setdefault("X-Content-Type-Options", "nosniff")
        out.setdefault("X-Frame-Options", "DENY")
        out.setdefault("Referrer-Policy", "no-referrer")
        if not path.startswith(_DOCS_PREFIXES):
            out.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        if https:
            out.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


class BodyLimitMiddleware:
    """Refuses request bodies over the limit with 413, before a handler parses them.

    Upload bodies (multipart, octet-stream) are streamed and limited by their own routes.
    A body without Content-Length is read up to limit+1 bytes (bounded) and replayed.
    """

    def __init__(self, app: ASGIApp, *, limit_bytes: int):
        self.app = app
        self.limit_bytes = limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-type", "").startswith(_STREAMED_TYPES):
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.limit_bytes:
                await self._too_large(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit_bytes:
                await self._too_large(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "payload_too_large", f"request body over {self.limit_bytes} bytes",
        )
        await response(scope, receive, send)


class RateLimitMiddleware:
    """An allowance per studio for callers with a valid access token, per client address
    for everyone else; shared by all replicas (counters live in MongoDB).

    By studio so that one studio's flood never spends another's allowance when both come
    from one address (an office NAT, a TLS proxy in front, `farm up` on a laptop). Only a
    token whose signature and claims verify picks the studio (no database read): a made-up
    token, an expired one or an API key counts against its address, so inventing
    credentials buys no fresh allowance.
    """

    EXEMPT = ("/health", "/ready", "/metrics")

    def __init__(self, app: ASGIApp, *, timeout_s: float = 0.4, rest_s: float = 1.0):
        self.app = app
        self.timeout_s = timeout_s
        self.rest_s = rest_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or app_path(scope) in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        platform = scope["app"].state.platform
        asked = time.monotonic()
        try:
            decision = await asyncio.wait_for(
                platform.rate_limiter.hit(self._key(scope, platform)), self.timeout_s)
        except (FarmError, TimeoutError):
            # Fail open: a slow counter store must not take the whole API down with it.
            log.warning("rate limiter unavailable; request allowed")
            # Busy, not away, if it answered anyone meanwhile. Replies already on the wire
            # are read first: on a loaded machine the timer may fire before them.
            await asyncio.sleep(0)
            if platform.db.answered_since(asked):
                await self.app(scope, receive, send)
                return
            # Away (it answered nobody meanwhile): the request's own calls share what is
            # left of FARM_DEPENDENCY_TIMEOUT_S, so it answers 503 within it, not after one
            # more full wait per call.
            with pymongo.timeout(self.rest_s):
                await self.app(scope, receive, send)
            return
        if not decision.allowed:
            response = error_response(
                429, "rate_limited", "too many requests; slow down",
                headers={"Retry-After": str(decision.retry_after_s)},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _key(scope: Scope, platform) -> str:
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token and not token.startswith(API_KEY_PREFIX):
            try:
                claims = platform.identity.authenticator.access.verify(token.strip())
            except FarmError:
                pass
            else:
                return f"studio:{claims.studio_id}"
        return f"ip:{(scope.get('client') or ('unknown', 0))[0]}"
