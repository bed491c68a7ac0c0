"""One exception per kind of answer the API gives (its error contract: `error.code`,
`message`, `details`, `request_id`), so scripts catch what they can act on."""

from __future__ import annotations

from typing import Any


class FarmError(Exception):
    """An error answer of the API. `request_id` is what to quote to whoever runs the farm."""

    def __init__(self, message: str, *, code: str = "farm_error", status: int | None = None,
                 details: list[dict[str, Any]] | None = None, request_id: str | None = None):
        super().__init__(message)
        self.message, self.code, self.status = message, code, status
        self.details = details or []
        self.request_id = request_id

    def __str__(self) -> str:
        where = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.code}: {self.message}{where}"


class InvalidInput(FarmError):
    """400, 413, 415, 422: the request itself; `field_errors` say which field."""

    @property
    def field_errors(self) -> dict[str, str]:
        return {".".join(str(p) for p in d.get("loc", [])): d.get("msg", "")
                for d in self.details}


class Unauthenticated(FarmError):
    """401: no valid credential (the client already tried refreshing)."""


class PermissionDenied(FarmError):
    """403."""


class NotFound(FarmError):
    """404."""


class Conflict(FarmError):
    """409: the object is not in a state that allows it (a paused job, an open upload)."""


class RateLimited(FarmError):
    """429; `retry_after_s` is the server's `Retry-After`."""

    def __init__(self, message: str, *, retry_after_s: float = 1.0, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class Unavailable(FarmError):
    """503 or no answer at all: a dependency (or the API) is away; retried before raised."""


class JobFailed(FarmError):
    """`wait()` on a job that ended failed or cancelled."""


def from_response(status: int, body: Any, headers: Any) -> FarmError:
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    fields = {"code": error.get("code") or f"http_{status}", "status": status,
              "details": error.get("details") or [],
              "request_id": error.get("request_id") or headers.get("x-request-id")}
    message = error.get("message") or f"HTTP {status}"
    if status == 429:
        return RateLimited(message, retry_after_s=float(headers.get("retry-after") or 1),
                           **fields)
    cls = {401: Unauthenticated, 403: PermissionDenied, 404: NotFound, 409: Conflict,
           503: Unavailable, 502: Unavailable, 504: Unavailable}.get(status)
    if cls is None:
        cls = InvalidInput if status in (400, 405, 408, 413, 415, 422) else FarmError
    return cls(message, **fields)
