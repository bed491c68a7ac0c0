"""Domain errors carry decisions (what went wrong, may the caller retry), not HTTP.

`serve/errors.py` maps each class to a status code by walking the hierarchy.
Constructor arguments are passed to `super().__init__` so errors survive pickling
across Ray actor calls.
"""

from __future__ import annotations

from typing import Any


class FarmError(Exception):
    code = "farm_error"
    # The same request may succeed later: the HTTP answer then says when (`Retry-After`).
    retryable = False

    def __init__(self, message: str, *, code: str | None = None,
                 details: list[dict[str, Any]] | None = None):
        super().__init__(message, code, details)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or []

    def __reduce__(self):  # keep keyword-only arguments through pickling
        return (_rebuild, (type(self), self.message, self.code, self.details))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls, message, code, details):
    return cls(message, code=code, details=details)


class InvalidInput(FarmError):
    code = "invalid_input"


class Unauthenticated(FarmError):
    code = "unauthenticated"


class Forbidden(FarmError):
    code = "forbidden"


class NotFound(FarmError):
    code = "not_found"


class Conflict(FarmError):
    code = "conflict"


class PayloadTooLarge(FarmError):
    code = "payload_too_large"


class BodyTimeout(FarmError):
    """The client stopped sending a request body part-way."""

    code = "body_timeout"


class UnsupportedMedia(FarmError):
    code = "unsupported_media_type"


class RateLimited(FarmError):
    code = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after_s: int = 1, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after_s = max(1, int(retry_after_s))

    def __reduce__(self):
        return (_rebuild_rate_limited, (self.message, self.retry_after_s, self.code))


def _rebuild_rate_limited(message, retry_after_s, code):
    return RateLimited(message, retry_after_s=retry_after_s, code=code)


class DependencyUnavailable(FarmError):
    code = "dependency_unavailable"
    retryable = True


class RenderFailed(FarmError):
    code = "render_failed"
