"""Storage conventions shared by the identity services.

Times are stored as epoch seconds (floats), not BSON dates. Measured on the embedded
server (nx-27017 0.8.1): a datetime written by `$set` or `$max` on an existing document
is stored as a *string*, after which range queries on it silently match nothing. Numbers
behave the same on that server and on MongoDB. Only `purge_at`, written once at insert
(which stores real dates there too), is a BSON date, because TTL indexes need one.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from pymongo.errors import PyMongoError

from pipelines.errors import DependencyUnavailable

STUDIOS = "studios"
USERS = "users"
FAMILIES = "token_families"
REFRESH_TOKENS = "refresh_tokens"
API_KEYS = "api_keys"
log = logging.getLogger("farm.identity")

AUDIT = "audit_log"

P = ParamSpec("P")
R = TypeVar("R")


def new_id() -> str:
    return uuid.uuid4().hex


def as_datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def maybe_datetime(epoch_s: float | None) -> datetime | None:
    return None if epoch_s is None else as_datetime(epoch_s)


def purge_date(epoch_s: float) -> datetime:
    """For TTL indexes; written only at insert (see the module docstring)."""
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
