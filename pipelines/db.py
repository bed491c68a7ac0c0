"""One async MongoDB client (PyMongo's async API) and the indexes every module declares."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from pymongo import AsyncMongoClient, IndexModel, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, PyMongoError

from pipelines.errors import DependencyUnavailable

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger("farm.db")

# collection name -> indexes; modules register theirs with `declare_indexes` at import.
_INDEXES: dict[str, list[IndexModel]] = {}


def declare_indexes(collection: str, indexes: Iterable[IndexModel]) -> None:
    _INDEXES.setdefault(collection, []).extend(indexes)


def database_away(exc: BaseException) -> bool:
    """The database is unreachable or out of time (not a bug in a query)."""
    return isinstance(exc, ConnectionFailure | DependencyUnavailable) or \
        (isinstance(exc, PyMongoError) and exc.timeout)


def new_id() -> str:
    return uuid.uuid4().hex


def purge_date(epoch_s: float) -> datetime:
    """For TTL indexes; written only at insert (see pipelines/identity/records.py)."""
    return datetime.fromtimestamp(epoch_s, UTC)


def db_errors(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Transport failures become a retryable domain error at the service boundary."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await func(*args, **kwargs)
        except PyMongoError as exc:
            # The driver's class names mean nothing to a client; the log keeps them.
            log.warning("database call failed: %s", type(exc).__name__)
            raise DependencyUnavailable("the database is unavailable; retry") from exc

    return wrapper


def declared_indexes() -> dict[str, list[IndexModel]]:
    return {name: list(models) for name, models in _INDEXES.items()}


class _Answers(monitoring.CommandListener):
    """When the server last answered a command: a busy database still answers others'
    calls, a stalled one answers none."""

    def __init__(self) -> None:
        self.at = time.monotonic()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self.at = time.monotonic()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class Database:
    """Owns the client; hands out the database; translates transport failures."""

    def __init__(self, url: str, name: str, timeout_s: float = 3.0, *,
                 for_requests: bool = False):
        # Request handlers find a stopped server out within three quarters of `timeout_s`
        # (the driver may overrun by one 0.5 s heartbeat, measured). A stalled one (it
        # holds its connections and answers nothing) is bounded per request instead
        # (serve/middleware.py): a bound on every call would turn a slow, busy database
        # into 503s. Long-running loops (the dispatcher) wait as long as they must.
        budget_ms = int(timeout_s * (750 if for_requests else 1000))
        self._answers = _Answers()
        self._client: AsyncMongoClient = AsyncMongoClient(
            url,
            serverSelectionTimeoutMS=budget_ms,
            connectTimeoutMS=int(timeout_s * 1000),
            tz_aware=True,
            appname="studio-farm",
            event_listeners=[self._answers],
        )
        self.db: AsyncDatabase = self._client[name]

    def answered_since(self, moment: float) -> bool:
        """Did the server answer any command of this process since `moment` (monotonic)?"""
        return self._answers.at >= moment

    def __getitem__(self, collection: str):
        return self.db[collection]

    async def ensure_indexes(self) -> None:
        try:
            for collection, models in declared_indexes().items():
                await self.db[collection].create_indexes(models)
        except PyMongoError as exc:
            raise DependencyUnavailable(f"database: cannot create indexes: {exc}") from exc

    async def ping(self, timeout_s: float) -> float:
        """Round-trip time in seconds; raises DependencyUnavailable."""
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self.db.command("ping"), timeout_s)
        except (PyMongoError, TimeoutError) as exc:
            # Refused at once or silent past the timeout: the same plain words either way.
            raise DependencyUnavailable("the database did not answer") from exc
        return time.perf_counter() - started

    async def close(self) -> None:
        await self._client.close()
