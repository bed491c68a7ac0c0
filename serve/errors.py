"""One error shape for every failure: {"error": {code, message, details, request_id}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from pipelines import errors
from pipelines.context import request_id_var

log = logging.getLogger("farm.http")

# Most specific first is not needed: the class hierarchy is walked from the error's own class.
STATUS_BY_ERROR: dict[type[errors.FarmError], int] = {
    errors.FarmError: 400,
    errors.InvalidInput: 422,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.BodyTimeout: 408,
    errors.UnsupportedMedia: 415,
    errors.RateLimited: 429,
    errors.DependencyUnavailable: 503,
    errors.RenderFailed: 422,
}

_OWN_CODES = frozenset({"password_too_long", "timecode_reversed"})
_PARAM_CODES = {("query", "cursor"): "invalid_cursor", ("query", "room"): "invalid_room"}

_HTTP_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
    415: "unsupported_media_type", 429: "rate_limited",
}


def status_for(exc: errors.FarmError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]  # type: ignore[index]
    return 500


def error_response(status: int, code: str, message: str, details: list | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or [],
                      "request_id": request_id_var.get()}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _farm_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.FarmError)
    headers = {}
    if exc.retryable:  # a limit or a dependency away: clients wait and retry, not give up
        headers["Retry-After"] = str(getattr(exc, "retry_after_s", 1))
    status = status_for(exc)
    if status == 401:  # RFC 6750: say which scheme, and why, to clients and proxies
        headers["WWW-Authenticate"] = f'Bearer realm="studio-farm", error="invalid_token", ' \
                                      f'error_description="{exc.code}"'

    if status >= 500:
        log.warning("dependency failure: %s", exc.message, extra={"code": exc.code})
    return error_response(status, exc.code, exc.message, exc.details, headers)


# FastAPI's answer when a body is JSON it cannot decode for another reason than syntax
# (invalid UTF-8, nesting past the recursion limit, an integer past Python's digit limit).
_UNPARSEABLE_BODY = "There was an error parsing the body"
MALFORMED_JSON = "the body is not valid JSON (syntax, UTF-8, nesting or number size)"


def _allowed_methods(request: Request) -> str:
    """Every method the path has. Starlette's 405 names those of the first route that
    matched the path only, and a path often has one route per method."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if getattr(route, "methods", None) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSEABLE_BODY:
        return error_response(400, "malformed_json", MALFORMED_JSON)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = "no such route"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(exc.status_code, code, message, headers=headers)


def _sent_other_than_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return bool(media) and media != "application/json" and not media.endswith("+json")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if any(err.get("type") == "json_invalid" for err in exc.errors()):
        # A syntax error is one of the ways a body is not JSON: the same answer as the rest.
        return error_response(400, "malformed_json", MALFORMED_JSON)
    if _sent_other_than_json(request) and any(
            tuple(err.get("loc", ()))[:1] == ("body",) for err in exc.errors()):
        return error_response(415, "unsupported_media_type", "send the body as application/json")
    # Never echo the input back: it may hold a password or a token.
    details = [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": err.get("msg", ""),
         "type": err.get("type", "")}
        for err in exc.errors()
    ]
    # A cursor or room of the wrong shape is refused by its pattern; the answer names it
    # as the service names one it cannot use, so clients see one code for each.
    places = {tuple(d["loc"]) for d in details}
    code = _PARAM_CODES.get(places.pop()) if len(places) == 1 else None
    # A rule the schema cannot state exactly answers with its own code (listed per route).
    kinds = {d["type"] for d in details}
    if len(kinds) == 1 and kinds <= _OWN_CODES:
        code = kinds.pop()
    return error_response(422, code or "validation_failed", "the request is not valid", details)


async def _database_unreachable(_: Request, exc: Exception) -> JSONResponse:
    # Safety net for calls that did not translate a lost connection or an operation out
    # of time themselves (for example the first use of a pooled connection after a
    # database restart). Any other driver error is a bug, and stays a 500.
    assert isinstance(exc, PyMongoError)
    if not (isinstance(exc, ConnectionFailure) or exc.timeout):
        raise exc
    log.warning("database connection failure: %s", type(exc).__name__)
    return error_response(503, "dependency_unavailable", "the database is unavailable; retry",
                          headers={"Retry-After": "1"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PyMongoError, _database_unreachable)
    app.add_exception_handler(errors.FarmError, _farm_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
