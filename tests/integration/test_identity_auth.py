"""Registration, login, refresh rotation, logout and token attacks over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import httpx
import jwt
import pytest

from tests.integration.test_http_contract import assert_error
from tests.support import contract
from tests.support.identity import (
    PASSWORD,
    add_member,
    bearer,
    login,
    register_body,
    register_studio,
    unique,
)

ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"


async def test_register_creates_a_studio_and_its_admin(http):
    body = register_body()
    response = await http.post("/api/v1/auth/register", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["user"]["role"] == "admin" and data["user"]["email"] == body["email"]
    assert data["studio"]["slug"] == body["studio_slug"]
    assert data["token_type"] == "bearer" and data["expires_in"] == 900
    assert data["refresh_token"].startswith("sfr_")
    assert response.headers["cache-control"] == "no-store"
    assert "password" not in response.text and "hash" not in response.text
    me = await http.get(ME, headers=bearer(data["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["credential"] == {"kind": "session", "role": "admin", "key_id": None}
    assert me.json()["studio"]["id"] == data["studio"]["id"]


async def test_access_tokens_carry_the_documented_claims(http, settings):
    data = (await http.post("/api/v1/auth/register", json=register_body())).json()
    claims = jwt.decode(data["access_token"], options={"verify_signature": False})
    assert set(claims) == {"sub", "studio_id", "role", "jti", "iss", "aud", "typ", "iat",
                           "exp", "sid"}
    assert (claims["iss"], claims["aud"], claims["typ"]) == (
        settings.jwt_issuer, settings.jwt_audience, "access")
    assert claims["exp"] - claims["iat"] == 900
    assert claims["studio_id"] == data["studio"]["id"] and claims["sub"] == data["user"]["id"]


async def test_studio_handles_are_unique(http):
    body = register_body()
    assert (await http.post("/api/v1/auth/register", json=body)).status_code == 201
    again = register_body(slug=body["studio_slug"], email=f"other@{unique()}.example")
    assert_error(await http.post("/api/v1/auth/register", json=again), 409, "studio_taken")


async def test_the_same_email_may_belong_to_two_studios(http):
    email = f"freelancer-{uuid.uuid4().hex[:8]}@example.com"
    first = await http.post("/api/v1/auth/register", json=register_body(email=email))
    second = await http.post("/api/v1/auth/register", json=register_body(email=email))
    assert first.status_code == second.status_code == 201
    assert first.json()["studio"]["id"] != second.json()["studio"]["id"]


@pytest.mark.parametrize("field, value", [
    ("role", "admin"), ("studio_id", "someone-elses"), ("active", True), ("owner_id", "x"),
])
async def test_register_refuses_fields_the_caller_does_not_control(http, field, value):
    body = register_body() | {field: value}
    error = assert_error(await http.post("/api/v1/auth/register", json=body),
                         422, "validation_failed")
    assert error["details"][0]["loc"][-1] == field


@pytest.mark.parametrize(("password", "code"), [
    ("p" * 73, "password_too_long"), ("🎬" * 64, "password_too_long"),
    ("short", "validation_failed"), ("é" * 37, "password_too_long"),
])
async def test_passwords_outside_8_to_72_bytes_are_a_clear_422(http, password, code):
    body = register_body(password=password)
    response = await http.post("/api/v1/auth/register", json=body)
    error = assert_error(response, 422, code)
    assert error["details"][0]["loc"] == ["body", "password"]
    assert "bytes" in error["details"][0]["msg"]
    assert password not in response.text
    # Refused, not created: the handle is still free.
    assert (await http.post("/api/v1/auth/register", json=register_body(
        slug=body["studio_slug"]))).status_code == 201


async def test_a_lone_surrogate_in_a_password_is_422_not_500(http):
    # JSON may carry a lone surrogate escape, which is not encodable as UTF-8: a clean 422
    # (pydantic refuses such strings), never a 500 from deep inside the hashing.
    raw = json.dumps(register_body(password="PLACEHOLDER")).replace(
        '"PLACEHOLDER"', '"abcdefgh\\ud800"')
    response = await http.post("/api/v1/auth/register", content=raw,
                               headers={"Content-Type": "application/json"})
    assert_error(response, 422, "validation_failed")
    login_raw = '{"studio": "x", "email": "a@b.example", "password": "abcdefgh\\ud800"}'
    response = await http.post("/api/v1/auth/login", content=login_raw,
                               headers={"Content-Type": "application/json"})
    assert_error(response, 422, "validation_failed")


async def test_long_passwords_never_log_in_by_prefix(http):
    for password in ("p" * 72, "🎬" * 18):  # exactly 72 bytes each
        body = register_body(password=password)
        assert (await http.post("/api/v1/auth/register", json=body)).status_code == 201
        slug, email = body["studio_slug"], body["email"]
        assert (await login(http, slug, email, password)).status_code == 200
        for attempt in (password + "x", password + "🎬", password * 2):
            assert_error(await login(http, slug, email, attempt), 401, "invalid_credentials")
        assert_error(await login(http, slug, email, password[:-1]), 401, "invalid_credentials")


async def test_unknown_email_unknown_studio_and_wrong_password_look_the_same(http):
    ctx = await register_studio(http, roles=())
    answers = [
        await login(http, ctx.slug, ctx.admin.email, "wrong password"),
        await login(http, ctx.slug, f"nobody-{uuid.uuid4().hex}@x.example", PASSWORD),
        await login(http, unique("nostudio"), ctx.admin.email, PASSWORD),
    ]
    errors = [assert_error(a, 401, "invalid_credentials") for a in answers]
    assert len({(e["message"], tuple(e["details"])) for e in errors}) == 1


async def test_email_is_case_insensitive_at_login(http):
    ctx = await register_studio(http, roles=())
    response = await login(http, ctx.slug.upper(), ctx.admin.email.upper())
    assert response.status_code == 200, response.text


async def test_refresh_rotates_and_a_replayed_token_revokes_the_family(http):
    ctx = await register_studio(http, roles=())
    first = ctx.admin.refresh_token
    second = (await http.post(REFRESH, json={"refresh_token": first})).json()
    third = (await http.post(REFRESH, json={"refresh_token": second["refresh_token"]})).json()
    assert (await http.get(ME, headers=bearer(third["access_token"]))).status_code == 200
    # An attacker replays the first token: the family dies, the newest tokens with it.
    assert_error(await http.post(REFRESH, json={"refresh_token": first}),
                 401, "refresh_token_reused")
    assert_error(await http.post(REFRESH, json={"refresh_token": third["refresh_token"]}),
                 401, "refresh_token_revoked")
    assert_error(await http.get(ME, headers=bearer(third["access_token"])), 401, "token_revoked")
    # Another session of the same user is untouched.
    other = await login(http, ctx.slug, ctx.admin.email)
    assert (await http.get(ME, headers=bearer(other.json()["access_token"]))).status_code == 200


async def test_two_truly_concurrent_refreshes_one_wins_then_both_are_out(http, api):
    ctx = await register_studio(http, roles=())
    token = ctx.admin.refresh_token

    async def refresh_on_own_connection() -> httpx.Response:
        async with contract.client(base_url=api, timeout=30) as client:
            return await client.post(REFRESH, json={"refresh_token": token})

    answers = await asyncio.gather(*(refresh_on_own_connection() for _ in range(2)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 401], [a.text for a in answers]
    winner = next(a for a in answers if a.status_code == 200).json()
    loser = next(a for a in answers if a.status_code == 401)
    assert_error(loser, 401, "refresh_token_reused")
    assert_error(await http.post(REFRESH, json={"refresh_token": winner["refresh_token"]}),
                 401, "refresh_token_revoked")
    assert_error(await http.get(ME, headers=bearer(winner["access_token"])), 401, "token_revoked")


async def test_logout_revokes_the_family_and_its_access_tokens(http):
    ctx = await register_studio(http, roles=())
    response = await http.post(LOGOUT, json={"refresh_token": ctx.admin.refresh_token})
    assert response.status_code == 204
    assert_error(await http.post(REFRESH, json={"refresh_token": ctx.admin.refresh_token}),
                 401, "refresh_token_revoked")
    assert_error(await http.get(ME, headers=ctx.admin.headers), 401, "token_revoked")
    # Unknown tokens: the same 204, nothing to learn.
    assert (await http.post(LOGOUT, json={"refresh_token": "sfr_nope"})).status_code == 204


async def test_refresh_tokens_are_not_access_tokens_and_the_reverse(http):
    ctx = await register_studio(http, roles=())
    assert_error(await http.get(ME, headers=bearer(ctx.admin.refresh_token)), 401, "invalid_token")
    assert_error(await http.post(REFRESH, json={"refresh_token": ctx.admin.access_token}),
                 401, "invalid_refresh_token")


def _forge(settings, claims: dict, **overrides) -> str:
    key = overrides.pop("key", settings.jwt_secret.get_secret_value())
    return jwt.encode(claims | overrides, key, algorithm="HS256")


async def test_forged_access_tokens_are_refused_over_http(http, settings):
    ctx = await register_studio(http, roles=())
    claims = jwt.decode(ctx.admin.access_token, options={"verify_signature": False})
    assert (await http.get(ME, headers=bearer(_forge(settings, claims)))).status_code == 200
    payload = ctx.admin.access_token.split(".")[1]
    for alg in ("none", "None", "NONE"):
        none_header = base64.urlsafe_b64encode(
            json.dumps({"alg": alg, "typ": "JWT"}).encode()).decode().rstrip("=")
        assert_error(await http.get(ME, headers=bearer(f"{none_header}.{payload}.")),
                     401, "invalid_token")
    now = time.time()
    for forged in (
        _forge(settings, claims, key="some-other-key-some-other-key-some-other-key!"),
        _forge(settings, claims, aud="another-api"),
        _forge(settings, claims, iss=settings.jwt_issuer[:-1]),
        _forge(settings, claims, iss=settings.jwt_issuer + "-evil"),
        _forge(settings, claims, typ="refresh"),
        _forge(settings, claims, role="root"),
    ):
        assert_error(await http.get(ME, headers=bearer(forged)), 401, "invalid_token")
    expired = _forge(settings, claims, iat=now - 1000, exp=now - 100)
    assert_error(await http.get(ME, headers=bearer(expired)), 401, "token_expired")


async def test_missing_or_malformed_credentials_are_401(http):
    assert_error(await http.get(ME), 401, "unauthenticated")
    assert_error(await http.get(ME, headers={"Authorization": "Basic YTpi"}), 401,
                 "unauthenticated")
    bare = await http.get(ME, headers={"Authorization": "eyJhbGciOi.e30.sig"})  # no scheme
    assert "Authorization: Bearer" in assert_error(bare, 401, "unauthenticated")["message"]
    assert_error(await http.get(ME, headers=bearer("not-a-token")), 401, "invalid_token")
    assert_error(await http.get(ME, headers=bearer("sfk_not-a-key")), 401, "invalid_api_key")
    challenge = (await http.get(ME, headers=bearer("not-a-token"))).headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error_description="invalid_token"' in challenge


async def test_changing_the_password_ends_every_other_session(http):
    ctx = await register_studio(http, roles=("artist",))
    artist = ctx.artist
    second = (await login(http, ctx.slug, artist.email)).json()
    wrong = await http.post("/api/v1/auth/password", headers=artist.headers,
                            json={"current_password": "not it", "new_password": "new password 1"})
    assert_error(wrong, 422, "wrong_current_password")
    changed = await http.post("/api/v1/auth/password", headers=artist.headers,
                              json={"current_password": PASSWORD,
                                    "new_password": "new password 1"})
    assert changed.status_code == 200, changed.text
    for old in (artist.access_token, second["access_token"]):
        assert_error(await http.get(ME, headers=bearer(old)), 401, "token_revoked")
    for old in (artist.refresh_token, second["refresh_token"]):
        assert_error(await http.post(REFRESH, json={"refresh_token": old}), 401,
                     "refresh_token_revoked")
    assert (await http.get(ME, headers=bearer(changed.json()["access_token"]))).status_code == 200
    assert_error(await login(http, ctx.slug, artist.email), 401, "invalid_credentials")
    assert (await login(http, ctx.slug, artist.email, "new password 1")).status_code == 200


async def test_a_new_password_follows_the_rules(http):
    ctx = await register_studio(http, roles=())
    for new in ("p" * 73, "🎬" * 64):
        response = await http.post("/api/v1/auth/password", headers=ctx.admin.headers,
                                   json={"current_password": PASSWORD, "new_password": new})
        assert_error(response, 422, "password_too_long")
    member = await add_member(http, ctx, "td")
    assert (await http.get(ME, headers=member.headers)).status_code == 200
