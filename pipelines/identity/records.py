"""Storage conventions shared by the identity services.

Times are stored as epoch seconds (floats), not BSON dates. Measured on the embedded
server (nx-27017 0.8.1): a datetime written by `$set` or `$max` on an existing document
is stored as a *string*, after which range queries on it silently match nothing. Numbers
behave the same on that server and on MongoDB. Only `purge_at`, written once at insert
(which stores real dates there too), is a BSON date, because TTL indexes need one.
"""

from __future__ import annotations

from datetime import UTC, datetime

STUDIOS = "studios"
USERS = "users"
FAMILIES = "token_families"
REFRESH_TOKENS = "refresh_tokens"
API_KEYS = "api_keys"

AUDIT = "audit_log"

def as_datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def maybe_datetime(epoch_s: float | None) -> datetime | None:
    return None if epoch_s is None else as_datetime(epoch_s)
