"""Every answer the tests see is checked against the OpenAPI document.

`client(...)` is an `httpx.AsyncClient` whose response hook finds the operation (method and
path template), then fails the test when the status is not declared for it or the JSON body
does not match the declared schema. Paths the document does not hold (unknown routes, a 405
for a method a path lacks), non-JSON bodies and /metrics are left alone. The upload gateway
serves only the byte routes: `client(..., paths=GATEWAY_PATHS)` checks only those.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
from jsonschema import Draft202012Validator

METHODS = ("get", "put", "post", "patch", "delete")
SKIPPED = ("/metrics",)
GATEWAY_PATHS = ("/api/v1/uploads/{upload_id}/parts/{number}", "/api/v1/assets/{asset_id}/file")


class ContractBroken(AssertionError):
    """An answer the OpenAPI document does not allow."""


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    responses: dict[str, Any]


@functools.cache
def document() -> dict[str, Any]:
    """The Api's document, built as /openapi.json serves it (no server needed)."""
    from config.settings import Settings
    from serve.app import create_app

    return create_app(Settings(env="test")).openapi()


@functools.cache
def operations() -> list[Operation]:
    found = []
    for template, item in document()["paths"].items():
        regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        for method in METHODS:
            if method in item:
                found.append(Operation(method.upper(), template, re.compile(f"^{regex}$"),
                                       item[method]["responses"]))
    # Literal segments win over parameters: /jobs/{id}/tasks before /jobs/{id}/{action}.
    return sorted(found, key=lambda op: op.template.count("{"))


def operation_for(method: str, path: str) -> Operation | None:
    return next((op for op in operations()
                 if op.method == method and op.pattern.match(path)), None)


_validators: dict[tuple[str, str, str], Draft202012Validator | None] = {}


def _validator(operation: Operation, status: str) -> Draft202012Validator | None:
    key = (operation.method, operation.template, status)
    if key not in _validators:
        media = operation.responses[status].get("content", {}).get("application/json")
        _validators[key] = media and Draft202012Validator(
            {**media["schema"], "components": document()["components"]})
    return _validators[key]


def problems(method: str, path: str, status: int, content_type: str, body: bytes,
             paths: tuple[str, ...] | None = None) -> list[str]:
    """What is wrong with an answer, by the document; empty when nothing is."""
    operation = operation_for(method, path)
    if operation is None or path in SKIPPED or (paths and operation.template not in paths):
        return []
    where = f"{method} {operation.template} -> {status}"
    if str(status) not in operation.responses:
        return [f"{where}: status not declared ({body[:300]!r})"]
    if not content_type.startswith("application/json"):
        return []
    if not body:
        return [f"{where}: a JSON media type without a body"]
    validator = _validator(operation, str(status))
    if validator is None:
        return [f"{where}: a JSON body where the document declares none"]
    instance = json.loads(body)
    return [f"{where}: {error.json_path}: {error.message[:300]}"
            for error in validator.iter_errors(instance)]


def checker(paths: tuple[str, ...] | None = None) -> Any:
    """An httpx response hook raising ContractBroken on an answer the document forbids."""

    async def check_response(response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        found = problems(request.method, request.url.path, response.status_code,
                         response.headers.get("content-type", ""), response.content, paths)
        if found:
            raise ContractBroken("\n".join(found))

    return check_response


def client(paths: tuple[str, ...] | None = None, **options: Any) -> httpx.AsyncClient:
    """An AsyncClient for the Api (or, with GATEWAY_PATHS, the upload gateway) whose
    answers are checked."""
    hooks = options.pop("event_hooks", {})
    hooks = {**hooks, "response": [*hooks.get("response", []), checker(paths)]}
    return httpx.AsyncClient(event_hooks=hooks, **options)
