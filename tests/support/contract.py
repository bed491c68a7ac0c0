"""Every answer the tests see is checked against the OpenAPI document.

`client(...)` is an `httpx.AsyncClient` whose response hook finds the operation (method and
path template), then fails the test when the status is not declared for it or the JSON body
does not match the declared schema. Paths the document does not hold (unknown routes, a 405
for a method a path lacks), non-JSON bodies and /metrics are left alone.
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


def problems(method: str, path: str, status: int, content_type: str,
             body: bytes) -> list[str]:
    """What is wrong with an answer, by the document; empty when nothing is."""
    operation = operation_for(method, path)
    if operation is None or path in SKIPPED:
        return []
    where = f"{method} {operation.template} -> {status}"
    if str(status) not in operation.responses:
        return [f"{where}: status not declared ({body[:300]!r})"]
    if not content_type.startswith("application/json"):
        return []
    validator = _validator(operation, str(status))
    if validator is None:
        return [f"{where}: a JSON body where the document declares none"]
    instance = json.loads(body)
    return [f"{where}: {error.json_path}: {error.message[:300]}"
            for error in validator.iter_errors(instance)]


async def check_response(response: httpx.Response) -> None:
    """httpx response hook: raise ContractBroken on an answer the document does not allow."""
    await response.aread()
    request = response.request
    found = problems(request.method, request.url.path, response.status_code,
                     response.headers.get("content-type", ""), response.content)
    if found:
        raise ContractBroken("\n".join(found))


def client(**options: Any) -> httpx.AsyncClient:
    """An AsyncClient for the Api or the upload gateway whose answers are checked."""
    hooks = options.pop("event_hooks", {})
    hooks = {**hooks, "response": [*hooks.get("response", []), check_response]}
    return httpx.AsyncClient(event_hooks=hooks, **options)
