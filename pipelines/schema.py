"""JSON Schema fragments for rules that pydantic checks in code (validators, services), so
that the OpenAPI document states them too: a request valid by the schema is one the code
accepts, and one the code refuses is invalid by the schema."""

from __future__ import annotations

from typing import Any

NOT_NULL: dict[str, Any] = {"not": {"type": "null"}}


def given(*fields: str) -> dict[str, Any]:
    """Every one of `fields` present and not null."""
    return {"required": list(fields), "properties": dict.fromkeys(fields, NOT_NULL)}


def at_least_one(*fields: str) -> dict[str, Any]:
    """A PATCH body: some field given, and not null (null means 'leave as it is')."""
    return {"minProperties": 1, "anyOf": [given(field) for field in fields]}


def when(field: str, value: str, then: dict[str, Any]) -> dict[str, Any]:
    """`then` applies to objects whose `field` is `value` (JSON Schema if/then)."""
    return {"if": {"required": [field], "properties": {field: {"const": value}}},
            "then": then}
