"""The OpenAPI document is the contract: every operation says what it answers, in full."""

from __future__ import annotations

import json

import pytest

from config.settings import Settings
from serve.app import create_app
from serve.contract import ERROR_REF

METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture(scope="module")
def schema() -> dict:
    return create_app(Settings(env="test")).openapi()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def typed(body_schema: dict, components: dict) -> bool:
    """A named model, or a type with its fields or items stated: not `{}`, not `object`."""
    ref = body_schema.get("$ref")
    if ref:
        return typed(components[ref.rsplit("/", 1)[1]], components)
    return bool(body_schema.get("properties") or body_schema.get("items")
                or body_schema.get("type") == "string")


def expected_errors(path: str, operation: dict) -> set[str]:
    statuses = {"405"}
    if path not in ("/health", "/ready", "/metrics"):
        statuses |= {"429", "503"}
    if operation.get("security"):
        statuses |= {"401", "403"}
    if "{" in path:
        statuses |= {"404", "422"}
    if "requestBody" in operation:
        statuses |= {"400", "413", "415", "422"}
    return statuses


def test_every_operation_declares_a_typed_answer_and_its_errors(schema: dict):
    components = schema["components"]["schemas"]
    missing: list[str] = []
    count = 0
    for name, operation in operations(schema):
        count += 1
        path = name.split(" ", 1)[1]
        success = {k: v for k, v in operation["responses"].items() if k.startswith("2")}
        assert success, name
        for status, response in success.items():
            content = response.get("content", {})
            if status == "204":
                if content:
                    missing.append(f"{name}: 204 declares a body")
                continue
            media = content.get("application/json") or content.get("text/plain")
            if not media or not typed(media["schema"], components):
                missing.append(f"{name}: {status} is untyped")
        for status in expected_errors(path, operation):
            response = operation["responses"].get(status)
            ref = response and response["content"]["application/json"]["schema"].get("$ref")
            if ref != ERROR_REF:
                missing.append(f"{name}: {status} not declared with the Error schema")
    print(f"\n{count} operations, each with a typed answer and its error statuses")
    assert missing == []
    assert count >= 48


def test_error_statuses_name_their_codes_and_fastapi_422_is_gone(schema: dict):
    text = json.dumps(schema)
    assert "HTTPValidationError" not in text and "ValidationError" not in text
    assert set(schema["components"]["schemas"]["Error"]["properties"]) == {"error"}
    for name, operation in operations(schema):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and name != "GET /ready":
                assert "Codes: `" in response["description"], (name, status)


def test_byte_routes_document_their_real_bodies(schema: dict):
    part = schema["paths"]["/api/v1/uploads/{upload_id}/parts/{number}"]["put"]
    assert list(part["requestBody"]["content"]) == ["application/octet-stream"]
    form = schema["paths"]["/api/v1/assets/{asset_id}/file"]["post"]
    body = form["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"] and body["properties"]["file"]["format"] == "binary"
    assert "file_name_too_long" in form["responses"]["422"]["description"]
    metrics = schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]


def test_rules_in_code_are_in_the_schema(schema: dict):
    components = schema["components"]["schemas"]
    password = components["RegisterRequest"]["properties"]["password"]
    assert password["minLength"] == 8 and password["maxLength"] == 72
    assert components["RegisterRequest"]["properties"]["email"]["format"] == "idn-email"
    for patch in ("AssetPatch", "UserPatch", "CommentPatch"):
        assert components[patch]["minProperties"] == 1, patch
    kinds = {rule["if"]["properties"]["kind"]["const"]: rule["then"]["required"]
             for rule in components["JobSubmit"]["allOf"][:3]}
    assert kinds == {"preview": ["asset_id", "version"], "command": ["command"],
                     "render": ["render", "frames"]}
    cursor = next(p for p in schema["paths"]["/api/v1/assets"]["get"]["parameters"]
                  if p["name"] == "cursor")
    assert "pattern" in cursor["schema"]["anyOf"][0]


def test_bounds_are_exact_and_limits_from_settings_are_stated(schema: dict):
    components = schema["components"]["schemas"]
    version = components["DecisionCreate"]["properties"]["version"]["anyOf"][0]
    assert version["maximum"] == 2**63 - 1 and isinstance(version["minimum"], int)
    # Pydantic's own names for bounds it cannot place (after a validator) are not JSON Schema.
    assert not {'"ge":', '"le":', '"gt":', '"lt":'} & set(json.dumps(schema).split())
    size = components["UploadDeclare"]["properties"]["size"]
    assert size["maximum"] == Settings(env="test").max_upload_bytes


def test_each_steering_action_is_its_own_operation(schema: dict):
    paths = schema["paths"]
    for action in ("pause", "resume", "cancel", "retry"):
        assert "post" in paths[f"/api/v1/jobs/{{job_id}}/{action}"], action
    pause = paths["/api/v1/jobs/{job_id}/pause"]["post"]
    assert [p["name"] for p in pause["parameters"]] == ["job_id", "requeue"]
    cancel = paths["/api/v1/jobs/{job_id}/cancel"]["post"]
    assert [p["name"] for p in cancel["parameters"]] == ["job_id"]
    assert "/api/v1/jobs/{job_id}/{action}" not in paths
