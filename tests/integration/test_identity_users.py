"""User administration over HTTP: creation, listing, role changes, deactivation."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.test_http_contract import assert_error
from tests.support.identity import PASSWORD, add_member, bearer, login, register_studio

USERS = "/api/v1/users"
ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"


def new_user(role: str | None = "artist", **extra: object) -> dict:
    body: dict = {"email": f"u-{uuid.uuid4().hex[:10]}@example.com", "name": "New Person",
                  "password": PASSWORD}
    if role:
        body["role"] = role
    return body | extra


async def test_admin_creates_a_user_who_can_log_in(http):
    ctx = await register_studio(http, roles=())
    body = new_user("director")
    created = await http.post(USERS, headers=ctx.admin.headers, json=body)
    assert created.status_code == 201, created.text
    user = created.json()
    assert set(user) == {"id", "email", "name", "role", "active", "created_at", "last_login_at",
                         "email_verified", "invited"}
    assert user["role"] == "director" and user["active"] is True
    assert (await login(http, ctx.slug, body["email"])).json()["user"]["id"] == user["id"]
    got = await http.get(f"{USERS}/{user['id']}", headers=ctx.admin.headers)
    assert got.json()["last_login_at"] is not None


async def test_role_defaults_to_artist(http):
    ctx = await register_studio(http, roles=())
    created = await http.post(USERS, headers=ctx.admin.headers, json=new_user(role=None))
    assert created.json()["role"] == "artist"


async def test_an_email_is_unique_within_a_studio(http):
    ctx = await register_studio(http, roles=())
    body = new_user()
    assert (await http.post(USERS, headers=ctx.admin.headers, json=body)).status_code == 201
    again = await http.post(USERS, headers=ctx.admin.headers, json=body | {
        "email": body["email"].upper()})
    assert_error(again, 409, "email_taken")
    # Another studio does not learn it exists.
    other = await register_studio(http, roles=())
    assert (await http.post(USERS, headers=other.admin.headers, json=body)).status_code == 201


@pytest.mark.parametrize("field, value", [
    ("studio_id", "another-studio"), ("owner_id", "someone"), ("active", False),
    ("password_hash", "$2b$04$x"), ("id", "chosen-id"), ("tokens_valid_after_s", 0),
])
async def test_bodies_setting_fields_the_caller_does_not_control_are_422(http, field, value):
    ctx = await register_studio(http, roles=("artist",))
    response = await http.post(USERS, headers=ctx.admin.headers, json=new_user() | {field: value})
    assert_error(response, 422, "validation_failed")
    if field != "active":  # a PATCH may deactivate; it may set nothing else from this list
        patch = await http.patch(f"{USERS}/{ctx.artist.user_id}", headers=ctx.admin.headers,
                                 json={"name": "x", field: value})
        assert_error(patch, 422, "validation_failed")


async def test_passwords_of_new_users_follow_the_rules(http):
    ctx = await register_studio(http, roles=())
    for password, code in (("p" * 73, "password_too_long"), ("🎬" * 64, "password_too_long"),
                           ("1234567", "validation_failed")):
        response = await http.post(USERS, headers=ctx.admin.headers,
                                   json=new_user(password=password))
        assert_error(response, 422, code)


async def test_list_pages_with_an_opaque_cursor_and_only_this_studio(http):
    ctx = await register_studio(http, roles=())
    other = await register_studio(http, roles=("artist",))
    for _ in range(4):
        await http.post(USERS, headers=ctx.admin.headers, json=new_user())
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        # A studio id in the query is not a way in: it is never read.
        page = await http.get(USERS, headers=ctx.admin.headers,
                              params=params | {"studio_id": other.studio_id})
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [u["id"] for u in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    assert ctx.admin.user_id in seen and other.artist.user_id not in seen


async def test_a_bad_cursor_or_limit_is_422(http):
    ctx = await register_studio(http, roles=())
    assert_error(await http.get(USERS, headers=ctx.admin.headers, params={"cursor": "%%%"}),
                 422, "invalid_cursor")
    assert_error(await http.get(USERS, headers=ctx.admin.headers, params={"limit": 0}),
                 422, "validation_failed")
    assert_error(await http.get(USERS, headers=ctx.admin.headers, params={"limit": 500}),
                 422, "validation_failed")


async def test_a_role_change_cuts_existing_tokens_at_once(http):
    ctx = await register_studio(http, roles=("artist",))
    artist = ctx.artist
    changed = await http.patch(f"{USERS}/{artist.user_id}", headers=ctx.admin.headers,
                               json={"role": "supervisor"})
    assert changed.status_code == 200 and changed.json()["role"] == "supervisor"
    assert_error(await http.get(ME, headers=artist.headers), 401, "token_revoked")
    # The session survives: a refresh gives a token with the new role.
    fresh = await http.post(REFRESH, json={"refresh_token": artist.refresh_token})
    assert fresh.status_code == 200, fresh.text
    me = await http.get(ME, headers=bearer(fresh.json()["access_token"]))
    assert me.json()["credential"]["role"] == "supervisor"


async def test_deactivation_ends_everything_and_reactivation_allows_login_again(http):
    ctx = await register_studio(http, roles=("artist",))
    artist, url = ctx.artist, f"{USERS}/{ctx.artist.user_id}"
    off = await http.patch(url, headers=ctx.admin.headers, json={"active": False})
    assert off.status_code == 200 and off.json()["active"] is False
    assert_error(await http.get(ME, headers=artist.headers), 401, "token_revoked")
    assert_error(await http.post(REFRESH, json={"refresh_token": artist.refresh_token}),
                 401, "refresh_token_revoked")
    assert_error(await login(http, ctx.slug, artist.email), 401, "invalid_credentials")
    on = await http.patch(url, headers=ctx.admin.headers, json={"active": True})
    assert on.json()["active"] is True
    assert (await login(http, ctx.slug, artist.email)).status_code == 200


async def test_nobody_demotes_or_deactivates_themselves(http):
    ctx = await register_studio(http, roles=())
    own = f"{USERS}/{ctx.admin.user_id}"
    assert_error(await http.patch(own, headers=ctx.admin.headers, json={"role": "artist"}),
                 403, "not_on_yourself")
    assert_error(await http.patch(own, headers=ctx.admin.headers, json={"active": False}),
                 403, "not_on_yourself")
    renamed = await http.patch(own, headers=ctx.admin.headers, json={"name": "Ada P."})
    assert renamed.status_code == 200, renamed.text
    assert (await http.get(ME, headers=ctx.admin.headers)).status_code == 200  # still in
    second = await add_member(http, ctx, "admin")
    demoted = await http.patch(own, headers=second.headers, json={"role": "producer"})
    assert demoted.status_code == 200, demoted.text


async def test_two_admins_demoting_each_other_at_once_leave_an_admin(http, db):
    import asyncio

    for _ in range(3):  # the race is real: try it a few times
        ctx = await register_studio(http, roles=())
        second = await add_member(http, ctx, "admin")
        first_url, second_url = f"{USERS}/{ctx.admin.user_id}", f"{USERS}/{second.user_id}"
        answers = await asyncio.gather(
            http.patch(second_url, headers=ctx.admin.headers, json={"role": "artist"}),
            http.patch(first_url, headers=second.headers, json={"role": "artist"}))
        assert {a.status_code for a in answers} <= {200, 401, 409}, [a.text for a in answers]
        admins = await db["users"].count_documents(
            {"studio_id": ctx.studio_id, "role": "admin", "active": True})
        assert admins >= 1, [a.text for a in answers]
