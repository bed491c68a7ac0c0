"""The audit log records who did what, when, with which request id; admins read it."""

from __future__ import annotations

import uuid

from tests.integration.test_http_contract import assert_error
from tests.support.assets import create_asset, upload_simple
from tests.support.identity import create_key, login, register_studio

AUDIT = "/api/v1/audit"


async def entries(http, ctx, **params) -> list[dict]:
    response = await http.get(AUDIT, headers=ctx.admin.headers, params={"limit": 200} | params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_the_identity_events_of_a_studio_are_recorded(http):
    ctx = await register_studio(http, roles=("artist",))
    trace = f"audit-{uuid.uuid4().hex}"
    await login(http, ctx.slug, ctx.artist.email, "wrong password")
    await http.patch(f"/api/v1/users/{ctx.artist.user_id}", headers=ctx.admin.headers
                     | {"X-Request-ID": trace}, json={"role": "td"})
    key = await create_key(http, ctx.admin)
    await http.delete(f"/api/v1/api-keys/{key['id']}", headers=ctx.admin.headers)
    await http.post("/api/v1/auth/logout", json={"refresh_token": ctx.artist.refresh_token})
    log = await entries(http, ctx)
    actions = [e["action"] for e in log]
    for expected in ("studio.registered", "user.created", "auth.login", "auth.login_failed",
                     "user.updated", "api_key.created", "api_key.revoked",
                     "auth.token_family_revoked"):
        assert expected in actions, actions
    assert [e["at"] for e in log] == sorted((e["at"] for e in log), reverse=True)
    [update] = [e for e in log if e["action"] == "user.updated"]
    assert update["request_id"] == trace
    assert update["actor"] == {"user_id": ctx.admin.user_id, "kind": "session"}
    assert update["target"] == {"type": "user", "id": ctx.artist.user_id}
    assert update["details"] == {"role": {"from": "artist", "to": "td"}}
    [failed] = [e for e in log if e["action"] == "auth.login_failed"]
    assert failed["client"] and failed["target"]["id"] == ctx.artist.user_id
    assert "password" not in str(log).lower().replace("auth.password", "")


async def test_filter_by_action_and_page(http):
    ctx = await register_studio(http, roles=())
    for _ in range(3):
        await login(http, ctx.slug, ctx.admin.email)
    first = await http.get(AUDIT, headers=ctx.admin.headers,
                           params={"action": "auth.login", "limit": 2})
    body = first.json()
    assert len(body["items"]) == 2 and body["next_cursor"]
    rest = await http.get(AUDIT, headers=ctx.admin.headers,
                          params={"action": "auth.login", "limit": 2,
                                  "cursor": body["next_cursor"]})
    ids = [e["id"] for e in body["items"] + rest.json()["items"]]
    assert len(ids) == len(set(ids)) == 3


async def test_only_admins_read_it_and_only_their_own_studio(http):
    a = await register_studio(http, roles=("artist", "director"))
    b = await register_studio(http, roles=())
    for member in (a.artist, a.director):
        assert_error(await http.get(AUDIT, headers=member.headers), 403, "forbidden")
    b_log = await entries(http, b)
    assert a.studio_id not in str(b_log) and a.admin.user_id not in str(b_log)


async def test_the_studios_work_is_recorded_and_filtered_by_action_actor_and_object(
        http, mp4_bytes):
    ctx = await register_studio(http, roles=("td",))
    td, admin = ctx.td.headers, ctx.admin.headers
    trace = f"audit-{uuid.uuid4().hex}"
    asset = await create_asset(http, td)
    assert (await upload_simple(http, td, asset["id"], mp4_bytes)).status_code == 201
    decided = await http.post(f"/api/v1/assets/{asset['id']}/decisions", headers=admin,
                              json={"decision": "request_changes", "note": "warmer"})
    assert decided.status_code == 201, decided.text
    job = (await http.post("/api/v1/jobs", headers=td | {"X-Request-ID": trace}, json={
        "kind": "command", "frames": "1", "command": ["true"],
        "requirements": {"tags": ["audit-never"]}})).json()
    assert (await http.patch(f"/api/v1/jobs/{job['id']}", headers=td,
                             json={"priority": 90})).status_code == 200
    assert (await http.post(f"/api/v1/jobs/{job['id']}/cancel", headers=admin)).status_code \
        == 200
    key = await create_key(http, ctx.td)
    assert (await http.get("/api/v1/jobs", headers={
        "Authorization": f"Bearer {key['key']}"})).status_code == 200
    other = await create_asset(http, td)
    assert (await http.delete(f"/api/v1/assets/{other['id']}", headers=td)).status_code == 204

    log = await entries(http, ctx)
    actions = {e["action"] for e in log}
    assert {"asset.created", "asset.version_uploaded", "review.decided", "job.submitted",
            "job.changed", "job.cancelled", "api_key.used", "asset.deleted"} <= actions, actions
    [submitted] = await entries(http, ctx, action="job.submitted")
    assert submitted["request_id"] == trace
    assert submitted["actor"] == {"user_id": ctx.td.user_id, "kind": "session"}
    assert submitted["target"] == {"type": "job", "id": job["id"]}
    about_job = await entries(http, ctx, target=job["id"])
    assert [e["action"] for e in about_job] == ["job.cancelled", "job.changed", "job.submitted"]
    assert about_job[1]["details"] == {"priority": {"from": job["priority"], "to": 90}}
    by_admin = {e["action"] for e in await entries(http, ctx, actor=ctx.admin.user_id)}
    assert {"review.decided", "job.cancelled"} <= by_admin
    assert not by_admin & {"asset.created", "job.submitted"}
    [used] = await entries(http, ctx, actor=key["id"])
    assert used["action"] == "api_key.used" and used["target"]["id"] == key["id"]
    versions = await entries(http, ctx, action="asset.version_uploaded")
    assert versions[0]["details"]["size"] == len(mp4_bytes)
