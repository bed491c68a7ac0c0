"""Mass assignment: a body may set only the fields its schema names.

Every operation with a JSON body in the served OpenAPI document gets each field a caller
must never choose (studio, owner, role, id, timestamps, status, sequence numbers...) that
its schema does not declare. The answer is a 422 naming the field, and the database holds
nothing of the request afterwards (its text fields carry a marker that is searched for).
"""

from __future__ import annotations

import uuid

import pytest

from config.settings import Settings
from serve.app import create_app
from tests.integration.test_identity_matrix import CALLERS, MATRIX, World, fill, fresh_headers
from tests.security.conftest import contract_error
from tests.support.assets import create_asset, upload_simple

ROWS = {case.id: case for case in MATRIX}
# Fields no caller controls, with values that would matter if they were applied.
FORBIDDEN = {
    "studio_id": "other", "studio": {"id": "other"}, "owner_id": "other", "user_id": "other",
    "role": "admin", "id": "mine", "_id": "mine", "created_at": "2000-01-01T00:00:00Z",
    "updated_at": "2000-01-01T00:00:00Z", "status": "approved", "seq": 1, "version_count": 9,
    "submitted_by": "other", "uploaded_by": "other", "author_id": "other", "active": True,
    "deleted": True, "current_version": 7, "key_hash": "x", "password_hash": "x",
}
TEXT_FIELDS = ("name", "description", "body", "note", "filename", "studio_name")
COLLECTIONS = ("assets", "jobs", "users", "studios", "api_keys", "review_comments",
               "review_decisions", "uploads", "audit_log")
BODIES = {  # rows whose matrix body is not a valid body of the operation
    "POST /api/v1/uploads/{upload_id}/complete": lambda w: {"parts": None},
}


def json_operations(spec: dict) -> dict[str, set[str]]:
    """`METHOD /path` -> top-level properties of its JSON body schema."""
    schemas = spec["components"]["schemas"]
    found = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = content["application/json"]["schema"]
            for option in schema.get("anyOf", [schema]):
                if "$ref" in option:
                    schema = schemas[option["$ref"].rsplit("/", 1)[-1]]
            found[f"{method.upper()} {path}"] = set(schema.get("properties", {}))
    return found


# Built offline (no I/O in building an app) so that the operations parametrize the test.
OPERATIONS = json_operations(create_app(Settings(env="test")).openapi())


async def test_every_json_body_of_the_served_document_is_probed(http):
    served = json_operations((await http.get("/openapi.json")).json())
    assert served == OPERATIONS and "POST /api/v1/jobs" in served
    assert set(served) <= set(ROWS), "a body route without a matrix row (its valid body)"


def allowed_caller(case) -> str:
    """The first caller the row lets through (public rows: anyone)."""
    return next((c for c, s in zip(CALLERS, case.expect, strict=True)
                 if 200 <= s < 300 or s == 422), CALLERS[0])


def marked(body: dict, marker: str) -> dict:
    return {k: (marker if k in TEXT_FIELDS and isinstance(v, str) else v)
            for k, v in body.items()}


async def nothing_holds(db, marker: str) -> list[str]:
    found = []
    for name in COLLECTIONS:
        for field in TEXT_FIELDS:
            if await db[name].find_one({field: marker}):
                found.append(f"{name}.{field}")
    return found


@pytest.mark.parametrize("route", sorted(OPERATIONS))
async def test_no_body_sets_a_field_it_does_not_declare(http, db, world: World, route):
    case = ROWS[route]
    declared = OPERATIONS[route]
    marker = f"mass-{uuid.uuid4().hex[:10]}"
    wrong = []
    # One caller and one object for every field: a 422 changes neither.
    headers = await fresh_headers(http, world, allowed_caller(case))
    path = await fill(http, world, case.path)
    for field, value in FORBIDDEN.items():
        if field in declared:
            continue
        body = marked((BODIES.get(route) or case.body)(world) or {}, marker) | {field: value}
        response = await http.request(case.method, path, headers=headers, json=body)
        if response.status_code != 422:
            wrong.append(f"{field}: {response.status_code} {response.text[:160]}")
            continue
        error = contract_error(response, 422, "validation_failed")
        assert [d["loc"][-1] for d in error["details"]] == [field], error
    assert not wrong, f"{route} accepted fields it does not declare:\n" + "\n".join(wrong)
    assert not await nothing_holds(db, marker)


async def test_declared_status_cannot_jump_to_a_decision(http, world: World):
    """`status` is declared on an asset PATCH, but only review decisions approve."""
    headers = await fresh_headers(http, world, "A admin")
    asset = await create_asset(http, headers)
    for status in ("approved", "changes_requested"):
        response = await http.patch(f"/api/v1/assets/{asset['id']}", json={"status": status},
                                    headers=headers)
        assert response.status_code in (409, 422), response.text
    shown = await http.get(f"/api/v1/assets/{asset['id']}", headers=headers)
    assert shown.json()["status"] == "draft"


async def test_query_and_form_fields_cannot_pick_a_studio_or_owner(http, db, world: World,
                                                                   mp4_bytes):
    a, b = world.a, world.b
    a_headers = await fresh_headers(http, world, "A artist")
    asset = await create_asset(http, a_headers)
    # Query strings name no studio: B's admin listing "studio A" sees studio B only.
    for path in ("/api/v1/assets", "/api/v1/jobs", "/api/v1/users", "/api/v1/events"):
        response = await http.get(path, params={"studio_id": a.studio_id, "studio": a.slug,
                                                "owner_id": a.artist.user_id},
                                  headers=await fresh_headers(http, world, "B admin"))
        assert response.status_code == 200, response.text
        assert a.studio_id not in response.text and asset["id"] not in response.text
    # Extra form fields next to the file are not the version's fields.
    response = await http.post(
        f"/api/v1/assets/{asset['id']}/file", headers=a_headers,
        files={"file": ("clip.mp4", mp4_bytes, "video/mp4")},
        data={"studio_id": b.studio_id, "uploaded_by": b.admin.user_id, "number": "99",
              "sha256": "0" * 64, "size": "1"})
    assert response.status_code in (201, 422), response.text
    stored = await db["asset_versions"].find_one({"asset_id": asset["id"]})
    if response.status_code == 201:
        assert (stored["studio_id"], stored["uploaded_by"], stored["number"]) == (
            a.studio_id, a.artist.user_id, 1)
        assert stored["size"] == len(mp4_bytes) and stored["sha256"] != "0" * 64
    else:
        assert stored is None
    assert (await upload_simple(http, a_headers, asset["id"], mp4_bytes)).status_code == 201
