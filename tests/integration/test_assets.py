"""Assets over HTTP: validation, ownership, listing, tenancy; the janitor's clean-up."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.assets import MIB, create_asset, declare, upload_simple
from tests.support.identity import register_studio
from tests.support.media import padded


@pytest.fixture
async def studio(http):
    return await register_studio(http, roles=("artist", "producer", "director"))


async def test_create_validates_at_the_boundary(http, studio):
    headers = studio.artist.headers
    bad_bodies = [
        {"name": "", "kind": "shot"},
        {"name": "x", "kind": "spaceship"},
        {"name": "x" * 201, "kind": "shot"},
        {"name": "x", "kind": "shot", "tags": [f"t{i}" for i in range(21)]},
        {"name": "x", "kind": "shot", "tags": ["Not A Tag!"]},
        {"name": "x", "kind": "shot", "studio_id": "someone-else"},
        {"name": "x", "kind": "shot", "owner_id": "someone-else"},
        {"name": "x", "kind": "shot", "status": "approved"},
    ]
    for body in bad_bodies:
        response = await http.post("/api/v1/assets", json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
    created = await create_asset(http, headers, tags=["hero", "hero", "fx"])
    assert created["tags"] == ["hero", "fx"] and created["status"] == "draft"


async def test_artists_edit_their_own_assets_producers_edit_any(http, studio):
    mine = await create_asset(http, studio.artist.headers)
    theirs = await create_asset(http, studio.director.headers)
    url = "/api/v1/assets/{}"
    ok = await http.patch(url.format(mine["id"]), json={"description": "v2 blocking"},
                          headers=studio.artist.headers)
    assert ok.status_code == 200 and ok.json()["description"] == "v2 blocking"
    refused = await http.patch(url.format(theirs["id"]), json={"description": "mine now"},
                               headers=studio.artist.headers)
    assert refused.status_code == 403
    assert (await http.delete(url.format(theirs["id"]), headers=studio.artist.headers)
            ).status_code == 403
    producer = await http.patch(url.format(theirs["id"]), json={"status": "in_review"},
                                headers=studio.producer.headers)
    assert producer.status_code == 200 and producer.json()["status"] == "in_review"
    decision = await http.patch(url.format(mine["id"]), json={"status": "approved"},
                                headers=studio.producer.headers)
    assert decision.status_code == 422  # approval is a review decision, not a field edit


async def test_another_studios_asset_is_404_like_a_missing_one(http, studio, mp4_bytes):
    other = await register_studio(http, roles=())
    asset = await create_asset(http, studio.artist.headers)
    assert (await upload_simple(http, studio.artist.headers, asset["id"], mp4_bytes)
            ).status_code == 201
    session = await declare(http, studio.artist.headers, asset["id"], mp4_bytes)
    outsider = other.admin.headers
    attempts = [
        ("GET", f"/api/v1/assets/{asset['id']}", None),
        ("PATCH", f"/api/v1/assets/{asset['id']}", {"name": "stolen"}),
        ("DELETE", f"/api/v1/assets/{asset['id']}", None),
        ("GET", f"/api/v1/assets/{asset['id']}/versions", None),
        ("GET", f"/api/v1/assets/{asset['id']}/versions/1/download", None),
        ("POST", f"/api/v1/assets/{asset['id']}/uploads", {"filename": "x.mp4", "size": 10}),
        ("GET", f"/api/v1/uploads/{session['id']}", None),
        ("GET", f"/api/v1/uploads/{session['id']}/parts", None),
        ("POST", f"/api/v1/uploads/{session['id']}/complete", None),
        ("DELETE", f"/api/v1/uploads/{session['id']}", None),
    ]
    missing = "0" * 32
    for method, path, body in attempts:
        foreign = await http.request(method, path, json=body, headers=outsider)
        absent = await http.request(method, path.replace(asset["id"], missing)
                                    .replace(session["id"], missing), json=body,
                                    headers=outsider)
        assert foreign.status_code == absent.status_code == 404, (method, path, foreign.text)
        assert foreign.json()["error"]["code"] == absent.json()["error"]["code"]
    part = await http.put(f"/api/v1/uploads/{session['id']}/parts/1", content=mp4_bytes,
                          headers={**outsider, "Content-Type": "application/octet-stream"})
    assert part.status_code == 404
    listing = await http.get("/api/v1/assets", headers=outsider)
    assert asset["id"] not in [a["id"] for a in listing.json()["items"]]


async def test_list_filters_and_sorts(http, studio):
    headers = studio.artist.headers
    names = ["Zeta ship", "alpha tree", "Beta rock", "alphabet soup"]
    made = [await create_asset(http, headers, name=n, kind="prop" if i % 2 else "character",
                               tags=["hero"] if i < 2 else [])
            for i, n in enumerate(names)]
    await create_asset(http, studio.director.headers, name="director thing")

    async def ids(**params) -> list[str]:
        response = await http.get("/api/v1/assets", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [a["name"] for a in response.json()["items"]]

    assert await ids(sort="name", owner=studio.artist.user_id) == [
        "alpha tree", "alphabet soup", "Beta rock", "Zeta ship"]
    assert (await ids(sort="-name", owner=studio.artist.user_id))[:1] == ["Zeta ship"]
    assert await ids(name_prefix="ALPHA", sort="name") == ["alpha tree", "alphabet soup"]
    assert set(await ids(kind="prop")) == {"alpha tree", "alphabet soup"}
    assert set(await ids(tag="hero")) == {"Zeta ship", "alpha tree"}
    assert await ids(sort="created_at", owner=studio.artist.user_id) == names
    assert len(made) == 4
    bad = await http.get("/api/v1/assets", params={"sort": "owner"}, headers=headers)
    assert bad.status_code == 422
    assert (await http.get("/api/v1/assets", params={"limit": 101}, headers=headers)
            ).status_code == 422
    forged = await http.get("/api/v1/assets", params={"cursor": "not-a-cursor"}, headers=headers)
    assert forged.status_code == 422 and forged.json()["error"]["code"] == "invalid_cursor"


async def test_pagination_is_stable_under_concurrent_inserts(http, studio):
    headers = studio.admin.headers
    originals = {(await create_asset(http, headers, name=f"orig {i:02d}"))["id"]
                 for i in range(25)}
    seen: list[str] = []

    async def page_through() -> None:
        cursor = None
        while True:
            params = {"limit": 6, "sort": "created_at", **({"cursor": cursor} if cursor else {})}
            body = (await http.get("/api/v1/assets", params=params, headers=headers)).json()
            seen.extend(a["id"] for a in body["items"])
            cursor = body["next_cursor"]
            if not cursor:
                return
            await asyncio.sleep(0.01)

    async def insert_more() -> None:
        for i in range(15):
            await create_asset(http, headers, name=f"late {i:02d}")

    await asyncio.gather(page_through(), insert_more())
    assert len(seen) == len(set(seen)), "an asset appeared twice"
    assert originals <= set(seen), "an asset that existed before paging was skipped"


async def test_list_queries_are_backed_by_indexes(db, api):
    info = await db["assets"].index_information()
    keys = {tuple(k for k, _ in spec["key"]) for spec in info.values()}
    for field in ("name_lower", "created_at", "updated_at"):
        assert ("studio_id", "deleted", field) in keys
    for field in ("kind", "status", "tags", "owner_id"):
        assert ("studio_id", field, "created_at") in keys
    versions = await db["asset_versions"].index_information()
    assert any(spec.get("unique") and [k for k, _ in spec["key"]] == ["asset_id", "number"]
               for spec in versions.values())


async def test_an_approved_assets_version_is_frozen(http, studio, mp4_bytes, db):
    asset = await create_asset(http, studio.artist.headers)
    await db["assets"].update_one({"_id": asset["id"]}, {"$set": {"status": "approved"}})
    response = await upload_simple(http, studio.artist.headers, asset["id"], mp4_bytes)
    assert response.status_code == 409 and response.json()["error"]["code"] == "asset_frozen"


@pytest.fixture
async def domain(settings, db):
    from pipelines.assets.domain import AssetsDomain
    from pipelines.events.log import EventLog
    from pipelines.storage import ObjectStore
    from serve.platform import storage_config

    return AssetsDomain.build(db, ObjectStore(storage_config(settings)), settings, EventLog(db))


async def test_janitor_aborts_expired_uploads_and_gives_the_slot_back(http, studio, mp4_bytes,
                                                                      db, domain):
    asset = await create_asset(http, studio.artist.headers)
    session = await declare(http, studio.artist.headers, asset["id"], mp4_bytes)
    before = await domain.quota.get(studio.studio_id)
    await db["uploads"].update_one(
        {"_id": session["id"]}, {"$set": {"expires_at": time.time() - 1}})
    assert (await domain.janitor.run_once())["uploads_reaped"] >= 1
    record = await db["uploads"].find_one({"_id": session["id"]})
    assert record["state"] == "expired"
    assert (await domain.quota.get(studio.studio_id))["open_uploads"] == before["open_uploads"] - 1
    late = await http.put(f"/api/v1/uploads/{session['id']}/parts/1", content=mp4_bytes,
                          headers={**studio.artist.headers,
                                   "Content-Type": "application/octet-stream"})
    assert late.status_code == 409


async def test_delete_is_soft_and_objects_are_removed_in_the_background(
    http, studio, mp4_bytes, db, domain
):
    headers = studio.artist.headers
    asset = await create_asset(http, headers)
    data = padded(mp4_bytes, MIB)
    await upload_simple(http, headers, asset["id"], data)
    url = (await http.get(f"/api/v1/assets/{asset['id']}/versions/1/download",
                          headers=headers)).json()["url"]
    used = (await domain.quota.get(studio.studio_id))["bytes"]
    assert (await http.delete(f"/api/v1/assets/{asset['id']}", headers=headers)).status_code == 204
    assert (await http.get(f"/api/v1/assets/{asset['id']}", headers=headers)).status_code == 404
    assert (await db["assets"].find_one({"_id": asset["id"]}))["deleted"]
    await domain.janitor.run_once()
    async with httpx.AsyncClient() as storage:
        assert (await storage.get(url)).status_code == 404
    assert (await domain.quota.get(studio.studio_id))["bytes"] == used - len(data)
