"""API keys over HTTP: shown once, hashed, capped by the creator's role, revocable."""

from __future__ import annotations

import uuid

from tests.integration.test_http_contract import assert_error
from tests.support.identity import bearer, create_key, register_studio

KEYS = "/api/v1/api-keys"
ME = "/api/v1/auth/me"


async def test_a_key_is_shown_once_and_works_as_a_bearer_token(http):
    ctx = await register_studio(http, roles=("td",))
    created = await create_key(http, ctx.td)
    assert created["key"].startswith("sfk_") and created["key"].startswith(created["prefix"])
    assert created["role"] == "td" and created["owner_id"] == ctx.td.user_id
    assert created["last_used_at"] is None
    me = await http.get(ME, headers=bearer(created["key"]))
    assert me.status_code == 200, me.text
    assert me.json()["credential"] == {"kind": "api_key", "role": "td", "key_id": created["id"]}
    listed = await http.get(KEYS, headers=ctx.td.headers)
    assert created["key"] not in listed.text and "hash" not in listed.text
    [item] = listed.json()["items"]
    assert item["id"] == created["id"] and item["last_used_at"] is not None
    assert "key" not in item


async def test_a_key_may_not_outrank_its_creator(http):
    ctx = await register_studio(http, roles=("td",))
    refused = await http.post(KEYS, headers=ctx.td.headers,
                              json={"name": "too high", "role": "supervisor"})
    assert_error(refused, 403, "role_too_high")
    lower = await create_key(http, ctx.td, role="artist")
    me = await http.get(ME, headers=bearer(lower["key"]))
    assert me.json()["credential"]["role"] == "artist"
    # An artist-role key of an admin cannot do admin things.
    weak = await create_key(http, ctx.admin, role="artist")
    assert_error(await http.get("/api/v1/users", headers=bearer(weak["key"])), 403, "forbidden")


async def test_keys_cannot_mint_keys_or_change_passwords(http):
    ctx = await register_studio(http, roles=())
    key = (await create_key(http, ctx.admin))["key"]
    assert_error(await http.post(KEYS, headers=bearer(key), json={"name": "child"}),
                 403, "session_required")
    change = await http.post("/api/v1/auth/password", headers=bearer(key),
                             json={"current_password": "x", "new_password": "new password 9"})
    assert_error(change, 403, "session_required")
    # But an admin key may administer users, like its owner.
    users = await http.get("/api/v1/users", headers=bearer(key))
    assert users.status_code == 200


async def test_an_expiry_is_recorded(http):
    ctx = await register_studio(http, roles=())
    created = await create_key(http, ctx.admin, expires_in_days=30)
    assert created["expires_at"] is not None
    assert_error(await http.post(KEYS, headers=ctx.admin.headers,
                                 json={"name": "x", "expires_in_days": 0}),
                 422, "validation_failed")


async def test_revoked_keys_stop_working_and_vanish_from_the_list(http):
    ctx = await register_studio(http, roles=())
    created = await create_key(http, ctx.admin)
    revoked = await http.delete(f"{KEYS}/{created['id']}", headers=ctx.admin.headers)
    assert revoked.status_code == 204
    assert_error(await http.get(ME, headers=bearer(created["key"])), 401, "invalid_api_key")
    assert (await http.get(KEYS, headers=ctx.admin.headers)).json()["items"] == []
    again = await http.delete(f"{KEYS}/{created['id']}", headers=ctx.admin.headers)
    assert_error(again, 404, "api_key_not_found")


async def test_owners_see_their_keys_and_admins_see_all(http):
    ctx = await register_studio(http, roles=("td", "artist"))
    td_key = await create_key(http, ctx.td)
    admin_key = await create_key(http, ctx.admin)
    td_view = {k["id"] for k in (await http.get(KEYS, headers=ctx.td.headers)).json()["items"]}
    admin_view = {k["id"] for k in
                  (await http.get(KEYS, headers=ctx.admin.headers)).json()["items"]}
    assert td_view == {td_key["id"]}
    assert admin_view == {td_key["id"], admin_key["id"]}
    assert (await http.get(KEYS, headers=ctx.artist.headers)).json()["items"] == []
    # Someone else's key is not there for a non-admin: 404, exactly like a missing one.
    assert_error(await http.delete(f"{KEYS}/{admin_key['id']}", headers=ctx.td.headers),
                 404, "api_key_not_found")
    assert_error(await http.delete(f"{KEYS}/{uuid.uuid4().hex}", headers=ctx.td.headers),
                 404, "api_key_not_found")
    by_admin = await http.delete(f"{KEYS}/{td_key['id']}", headers=ctx.admin.headers)
    assert by_admin.status_code == 204


async def test_keys_follow_their_owner_demotion_and_deactivation(http):
    ctx = await register_studio(http, roles=("supervisor",))
    key = (await create_key(http, ctx.supervisor))["key"]
    url = f"/api/v1/users/{ctx.supervisor.user_id}"
    await http.patch(url, headers=ctx.admin.headers, json={"role": "artist"})
    me = await http.get(ME, headers=bearer(key))
    assert me.json()["credential"]["role"] == "artist"
    await http.patch(url, headers=ctx.admin.headers, json={"active": False})
    assert_error(await http.get(ME, headers=bearer(key)), 401, "invalid_api_key")


async def test_another_studios_key_is_404_and_bodies_cannot_pick_owner_or_studio(http):
    a = await register_studio(http, roles=())
    b = await register_studio(http, roles=())
    a_key = await create_key(http, a.admin)
    assert_error(await http.delete(f"{KEYS}/{a_key['id']}", headers=b.admin.headers),
                 404, "api_key_not_found")
    assert (await http.get(ME, headers=bearer(a_key["key"]))).status_code == 200
    for field, value in (("studio_id", a.studio_id), ("owner_id", a.admin.user_id),
                         ("user_id", a.admin.user_id), ("key", "sfk_chosen")):
        response = await http.post(KEYS, headers=b.admin.headers,
                                   json={"name": "x", field: value})
        assert_error(response, 422, "validation_failed")
