"""The error contract in the OpenAPI document: one `Error` component, every status each
operation can answer, and the error codes behind each status.

Routes state what only they know (`errors(404, 409, codes=...)`: their own not-found and
conflict codes); `finish_openapi` adds what follows from an operation's shape (a bearer
credential: 401 and 403; a body: 400, 413, 415, 422; the middleware every request passes:
405, 429, 503) and replaces FastAPI's own 422 schema, which our handlers never send.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from pipelines.numbers import MAX_INT64

ERROR_REF = "#/components/schemas/Error"
_FASTAPI_422 = ("HTTPValidationError", "ValidationError")
_METHODS = ("get", "put", "post", "patch", "delete")
# Operations the rate limiter never counts (serve/middleware.py: RateLimitMiddleware.EXEMPT).
_UNLIMITED = ("/health", "/ready", "/metrics")
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")

# What each status means, and the codes any operation with that trait may answer.
_MEANING = {
    400: "The body is not JSON (truncated, invalid UTF-8, nested too deep, a number too long)",
    401: "No credential, or one that is not valid (RFC 6750 `WWW-Authenticate` says why)",
    403: "The caller's role, or an API key, may not do this",
    404: "No such resource in the caller's studio",
    405: "The path exists but not with this method",
    408: "The request body stopped arriving",
    409: "The resource's state does not allow this now",
    413: "The request body is over its limit",
    415: "The body's media type is not the one this operation takes",
    422: "The request is well-formed but not valid",
    429: "Too many requests: retry after `Retry-After` seconds",
    503: "A dependency (database, storage, cluster) is down: retry",
}
_GENERIC_CODES = {
    400: ["malformed_json"],
    401: ["unauthenticated", "invalid_token", "token_expired", "token_revoked",
          "invalid_api_key"],
    403: ["forbidden", "session_required", "email_unverified"],
    404: ["not_found"],
    405: ["method_not_allowed"],
    413: ["payload_too_large"],
    415: ["unsupported_media_type"],
    422: ["validation_failed"],
    429: ["rate_limited"],
    503: ["dependency_unavailable"],
}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable: `asset_not_found`, ...")
    message: str = Field(description="For people; may change between releases.")
    details: list[Any] = Field(description="More about the failure, e.g. each invalid field "
                                           "as `{loc, msg, type}`; often empty.")
    request_id: str | None = Field(description="The `X-Request-ID` of the request, for logs.")


class Error(BaseModel):
    """Every failure, whatever its status: `{"error": {code, message, details, request_id}}`."""

    model_config = ConfigDict(json_schema_extra={"example": {"error": {
        "code": "asset_not_found", "message": "no such asset", "details": [],
        "request_id": "3f2a9c0e5b7d4e1f"}}})
    error: ErrorDetail


def errors(*statuses: int, codes: dict[int, list[str]] | None = None) -> dict[int | str, Any]:
    """`responses=` for a route: the statuses only the route knows, with their codes."""
    codes = codes or {}
    return {status: {"model": Error, "description": _describe(status, codes.get(status))}
            for status in sorted({*statuses, *codes})}


def _describe(status: int, codes: list[str] | None) -> str:
    named = ", ".join(f"`{code}`" for code in codes or [])
    return f"{_MEANING.get(status, 'Error')}. Codes: {named}." if named else _MEANING[status]


def finish_openapi(app: FastAPI, max_upload_bytes: int) -> None:
    """Replace `app.openapi` with one that completes the error contract (computed once)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _complete(schema)
            _exact_bounds(schema)
            # A setting, so not in the model: larger declared uploads are refused (413).
            declare = schema["components"]["schemas"]["UploadDeclare"]["properties"]["size"]
            declare["maximum"] = max_upload_bytes
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_422:
        components.pop(name, None)
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                _complete_operation(path, item[method])


def _traits(path: str, operation: dict[str, Any]) -> set[int]:
    statuses = {405}
    if path not in _UNLIMITED:
        statuses |= {429, 503}
    elif path != "/health":  # /ready and /metrics ask the platform; /health asks nothing
        statuses.add(503)
    if operation.get("security"):
        statuses |= {401, 403}
    params = operation.get("parameters", [])
    if any(p["in"] == "path" for p in params):
        statuses.add(404)
    if params or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        statuses |= {400, 413, 415}
    return statuses


def _complete_operation(path: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    for status in _traits(path, operation):
        key = str(status)
        if key not in responses or _is_fastapi_422(responses[key]):
            responses[key] = {"description": _MEANING[status]}
    for key, response in responses.items():
        if key.isdigit() and int(key) >= 400 and _is_error(response):
            _merge(response, int(key))


def _is_error(response: dict[str, Any]) -> bool:
    """Declared without a body, or with the Error schema (not /ready's own 503 shape)."""
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    return schema is None or schema.get("$ref") == ERROR_REF


def _merge(response: dict[str, Any], status: int) -> None:
    """The Error schema and the generic codes of `status` (after the route's own)."""
    content = response.setdefault("content", {}).setdefault("application/json", {})
    content["schema"] = {"$ref": ERROR_REF}
    generic = _GENERIC_CODES.get(status, [])
    description = response.get("description") or _MEANING.get(status, "Error")
    missing = [code for code in generic if f"`{code}`" not in description]
    if missing:
        listed = ", ".join(f"`{code}`" for code in missing)
        description = (description.rstrip(".") + f", {listed}." if "Codes:" in description
                       else f"{description.rstrip('.')}. Codes: {listed}.")
    response["description"] = description


# Pydantic's names of bounds it could not fold into an integer schema: integer fields take
# 45.0 (pipelines/numbers.py), and bounds on such a field reach the schema under these.
_PYDANTIC_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum",
                    "lt": "exclusiveMaximum"}


def _exact_bounds(node: Any) -> None:
    """FastAPI's document model holds numeric bounds as floats: 2**63 - 1 became 2**63 and
    1 became 1.0. Integral bounds are written back as integers, the 64-bit limit exactly."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for ours, standard in _PYDANTIC_BOUNDS.items():
                if ours in node:
                    node[standard] = node.pop(ours)
        for key in _BOUNDS:
            value = node.get(key)
            if isinstance(value, float) and value.is_integer():
                node[key] = MAX_INT64 if value == float(MAX_INT64) else int(value)
        for child in node.values():
            _exact_bounds(child)
    elif isinstance(node, list):
        for child in node:
            _exact_bounds(child)


def _is_fastapi_422(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref", "").endswith("/HTTPValidationError")
