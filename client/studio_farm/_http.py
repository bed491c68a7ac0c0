"""One HTTP session with the API: credentials, token refresh, timeouts, retries, errors.

- Every request has a timeout; none hangs.
- Retried with backoff, only when it cannot do harm: a connection that never opened, a
  `503`, a `429` (after its `Retry-After`), and, for requests that change nothing or are
  made idempotent by the server (GET, PUT, DELETE), a connection lost mid-answer.
- A `401` on an access token refreshes it once and sends the request again. One refresh is
  in flight at a time: the server revokes a whole session when a refresh token is replayed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from studio_farm.errors import FarmError, RateLimited, Unauthenticated, Unavailable, from_response

API = "/api/v1"
SAFE = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def base_url(url: str) -> str:
    """The server's address as requests are built on it: `http://farm:8000`, also from the
    API's own address (`.../api/v1`, as the server's banner shows it) or a trailing slash.

    A loopback address may come without its scheme (`127.0.0.1:8000`) and gets `http://`:
    nothing sent to it leaves the machine. Any other host must say which scheme it has:
    guessing `http://` would send a password in the clear across the network, and guessing
    `https://` fails against a `farm up`, which serves plain HTTP. Raises ValueError.
    """
    url = url.strip().rstrip("/").removesuffix(API).rstrip("/")
    if not url:
        raise ValueError("no address given, e.g. http://farm:8000")
    if not _SCHEME.match(url):
        if not _loopback(url):
            raise ValueError(f"{url}: say which scheme, http://{url} or https://{url}")
        url = f"http://{url}"
    return url


def _loopback(address: str) -> bool:
    try:
        host = httpx.URL(f"http://{address}").host
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except (httpx.InvalidURL, ValueError):  # not a URL, or a host that is not an IP
        return False


@dataclass
class Tokens:
    access: str
    refresh: str


class Session:
    def __init__(self, url: str, *, api_key: str | None = None, tokens: Tokens | None = None,
                 timeout_s: float = 30.0, attempts: int = 6,
                 on_tokens: Callable[[Tokens], None] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.url = base_url(url)
        self.api_key, self.tokens, self.on_tokens = api_key, tokens, on_tokens
        self.attempts = attempts
        self.http = httpx.AsyncClient(base_url=self.url, transport=transport,
                                      timeout=httpx.Timeout(timeout_s, connect=10.0))
        self._refreshing = asyncio.Lock()

    async def close(self) -> None:
        await self.http.aclose()

    def _headers(self) -> dict[str, str]:
        secret = self.api_key or (self.tokens.access if self.tokens else None)
        return {"Authorization": f"Bearer {secret}"} if secret else {}

    async def call(self, method: str, path: str, *, json: Any = None,
                   params: dict[str, Any] | None = None, expect: tuple[int, ...] = (),
                   authenticate: bool = True) -> Any:
        """The decoded answer of `method path` under /api/v1; raises a FarmError."""
        response = await self.send(method, API + path, json=json, params=params,
                                   authenticate=authenticate)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def send(self, method: str, url: str, *, json: Any = None,
                   params: dict[str, Any] | None = None, authenticate: bool = True,
                   refreshed: bool = False) -> httpx.Response:
        delay = 0.5
        for attempt in range(1, self.attempts + 1):
            stale = self.tokens.access if self.tokens else None
            try:
                response = await self.http.request(
                    method, url, json=json, params={k: v for k, v in (params or {}).items()
                                                    if v is not None},
                    headers=self._headers() if authenticate else {})
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                error: FarmError = Unavailable(f"cannot reach {self.url}: {exc}",
                                               code="unreachable")
            except httpx.TransportError as exc:  # it may have been received: retried if safe
                if method not in SAFE:
                    raise Unavailable(f"the connection was lost: {exc}", code="lost") from exc
                error = Unavailable(f"the connection was lost: {exc}", code="lost")
            else:
                if response.status_code < 400:
                    return response
                error = from_response(response.status_code, _json(response), response.headers)
                if isinstance(error, Unauthenticated) and authenticate and not refreshed \
                        and self.tokens is not None and self.api_key is None:
                    await self._refresh(stale)
                    return await self.send(method, url, json=json, params=params,
                                           refreshed=True)
                if not isinstance(error, RateLimited | Unavailable):
                    raise error
            if attempt == self.attempts:
                raise error
            wait = error.retry_after_s if isinstance(error, RateLimited) else delay
            await asyncio.sleep(wait + random.uniform(0, wait / 4))
            delay = min(delay * 2, 10.0)
        raise AssertionError("unreachable")

    async def stream(self, path: str, params: dict[str, Any] | None = None,
                     refreshed: bool = False) -> AsyncIterator[str]:
        """A text answer under /api/v1 as it arrives (a log that grows); errors as `call`."""
        stale = self.tokens.access if self.tokens else None
        async with self.http.stream(
                "GET", API + path, headers=self._headers(),
                params={k: v for k, v in (params or {}).items() if v is not None},
                timeout=httpx.Timeout(30.0, read=None)) as response:
            if response.status_code >= 400:
                await response.aread()
                error = from_response(response.status_code, _json(response), response.headers)
                if not (isinstance(error, Unauthenticated) and not refreshed
                        and self.tokens is not None and self.api_key is None):
                    raise error
            else:
                async for text in response.aiter_text():
                    yield text
                return
        await self._refresh(stale)
        async for text in self.stream(path, params, refreshed=True):
            yield text

    async def login(self, studio: str, email: str, password: str) -> dict[str, Any]:
        answer = await self.call("POST", "/auth/login", authenticate=False,
                                 json={"studio": studio, "email": email, "password": password})
        self._keep(answer)
        return answer

    async def _refresh(self, stale: str | None) -> None:
        async with self._refreshing:
            if self.tokens is None or self.tokens.access != stale:
                return  # another request refreshed while this one waited
            answer = await self.call("POST", "/auth/refresh", authenticate=False,
                                     json={"refresh_token": self.tokens.refresh})
            self._keep(answer)

    def _keep(self, answer: dict[str, Any]) -> None:
        self.tokens = Tokens(answer["access_token"], answer["refresh_token"])
        if self.on_tokens:
            self.on_tokens(self.tokens)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
