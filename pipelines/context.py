"""Per-request context that follows the work into logs and actor calls."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(candidate: str | None) -> str:
    """A client's id if it is short and plain (it ends up in logs), else a fresh one."""
    if candidate and _SAFE_ID.match(candidate):
        return candidate
    return new_request_id()
