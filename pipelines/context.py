"""Per-request context that follows the work into logs and actor calls."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@contextlib.contextmanager
def request_context(request_id: str | None) -> Iterator[None]:
    """Work done on behalf of a request (a job's tasks, long after it was answered) logs
    and emits events under its id."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(candidate: str | None) -> str:
    """A client's id if it is short and plain (it ends up in logs), else a fresh one."""
    if candidate and _SAFE_ID.match(candidate):
        return candidate
    return new_request_id()
