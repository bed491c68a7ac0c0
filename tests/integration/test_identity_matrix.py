"""The authorization matrix: every /api/v1 route x every kind of caller, over real HTTP.

Callers: studio A's admin, artist and director, studio B's admin, and no credential.
Objects in paths belong to studio A. Any answer outside the table fails the test.

A new route joins by adding one `Case` row (and, for a new path parameter, one entry in
FILLERS that makes a studio-A object for it); `test_every_route_has_a_row` reads the served
OpenAPI document and fails until every route has its row.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from pymongo import MongoClient

from tests.support import contract
from tests.support.assets import create_asset, upload_simple
from tests.support.identity import (
    PASSWORD,
    StudioCtx,
    bearer,
    create_key,
    login,
    register_body,
    register_studio,
)

CALLERS = ("A admin", "A artist", "A director", "B admin", "no credential")
OK_FOR_ALL_WITH_CREDENTIAL = (200, 200, 200, 200, 401)


@dataclass
class World:
    a: StudioCtx
    b: StudioCtx
    created_keys: list[str] = field(default_factory=list)
    node_id: str = field(default_factory=lambda: f"matrix-{uuid.uuid4().hex[:8]}")

    @property
    def secrets(self) -> set[str]:
        """Identifiers of studio A that studio B must never see."""
        return {self.a.studio_id, self.a.admin.user_id, self.a.td.user_id,
                self.a.artist.user_id, *self.created_keys}


Body = Callable[[World], dict | None]


def no_body(_: World) -> None:
    return None


@dataclass(frozen=True)
class Case:
    method: str
    path: str                       # the OpenAPI template
    expect: tuple[int, int, int, int, int]  # in CALLERS order
    body: Body = no_body
    public: bool = False            # answers without a credential by design

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def new_user(_: World) -> dict:
    return {"email": f"m-{uuid.uuid4().hex[:10]}@example.com", "name": "M", "password": PASSWORD}


MATRIX: list[Case] = [
    # Public: the credential is ignored, so every caller gets the same answer.
    Case("POST", "/api/v1/auth/register", (201,) * 5, lambda w: register_body(), public=True),
    Case("POST", "/api/v1/auth/login", (200,) * 5, public=True, body=lambda w: {
        "studio": w.a.slug, "email": w.a.td.email, "password": PASSWORD}),
    Case("POST", "/api/v1/auth/refresh", (401,) * 5, public=True,
         body=lambda w: {"refresh_token": f"sfr_{uuid.uuid4().hex}"}),
    Case("POST", "/api/v1/auth/logout", (204,) * 5, public=True,
         body=lambda w: {"refresh_token": f"sfr_{uuid.uuid4().hex}"}),
    Case("POST", "/api/v1/auth/password/reset", (202,) * 5, public=True,
         body=lambda w: {"studio": w.a.slug, "email": f"x-{uuid.uuid4().hex}@x.example"}),
    Case("POST", "/api/v1/auth/password/reset/confirm", (422,) * 5, public=True,
         body=lambda w: {"token": uuid.uuid4().hex, "new_password": PASSWORD}),
    Case("POST", "/api/v1/auth/invitations/accept", (422,) * 5, public=True,
         body=lambda w: {"token": uuid.uuid4().hex, "password": PASSWORD}),
    # The caller's own account (the session's Api does not ask new accounts to confirm
    # their email: every caller here is confirmed already).
    Case("GET", "/api/v1/auth/me", OK_FOR_ALL_WITH_CREDENTIAL),
    Case("POST", "/api/v1/auth/verify", OK_FOR_ALL_WITH_CREDENTIAL,
         lambda w: {"code": "123456"}),
    Case("POST", "/api/v1/auth/verify/resend", (422, 422, 422, 422, 401)),
    Case("POST", "/api/v1/auth/password", OK_FOR_ALL_WITH_CREDENTIAL,
         lambda w: {"current_password": PASSWORD, "new_password": PASSWORD}),
    # Users: admins only; studio B's admin acts in studio B, and A's users are 404 to it.
    Case("POST", "/api/v1/users", (201, 403, 403, 201, 401), new_user),
    Case("GET", "/api/v1/users", (200, 403, 403, 200, 401)),
    Case("GET", "/api/v1/users/{user_id}", (200, 403, 403, 404, 401)),
    Case("PATCH", "/api/v1/users/{user_id}", (200, 403, 403, 404, 401),
         lambda w: {"name": "Renamed"}),
    # Invitations and the studio's outgoing mail: admins, their own studio.
    Case("POST", "/api/v1/invitations", (201, 403, 403, 201, 401),
         lambda w: {"email": f"inv-{uuid.uuid4().hex[:10]}@example.com", "name": "I"}),
    Case("GET", "/api/v1/invitations", (200, 403, 403, 200, 401)),
    Case("DELETE", "/api/v1/invitations/{invitation_id}", (204, 403, 403, 404, 401)),
    Case("GET", "/api/v1/mail", (200, 403, 403, 200, 401)),
    # Only a failed message is sent again: A's admin reaches it and is told it was not.
    Case("POST", "/api/v1/mail/{mail_id}/retry", (409, 403, 403, 404, 401)),
    # API keys: creation needs the right role; everyone lists their own; the key in the
    # path belongs to A's TD, so only A's admin may revoke it.
    Case("POST", "/api/v1/api-keys", (201, 403, 403, 201, 401), lambda w: {"name": "ci"}),
    Case("GET", "/api/v1/api-keys", OK_FOR_ALL_WITH_CREDENTIAL),
    Case("DELETE", "/api/v1/api-keys/{key_id}", (204, 404, 404, 404, 401)),
    # Audit: admins, their own studio.
    Case("GET", "/api/v1/audit", (200, 403, 403, 200, 401)),
    # Assets: every member reads and creates; the owner (A's artist), producers and admins
    # edit; studio B gets 404 for studio A's assets and uploads.
    Case("POST", "/api/v1/assets", (201, 201, 201, 201, 401),
         lambda w: {"name": "matrix", "kind": "prop"}),
    Case("GET", "/api/v1/assets", OK_FOR_ALL_WITH_CREDENTIAL),
    Case("GET", "/api/v1/assets/{asset_id}", (200, 200, 200, 404, 401)),
    Case("PATCH", "/api/v1/assets/{asset_id}", (200, 200, 403, 404, 401),
         lambda w: {"description": "notes"}),
    Case("DELETE", "/api/v1/assets/{asset_id}", (204, 204, 403, 404, 401)),
    Case("GET", "/api/v1/assets/{asset_id}/versions", (200, 200, 200, 404, 401)),
    Case("GET", "/api/v1/assets/{asset_id}/versions/{number}/download",
         (200, 200, 200, 404, 401)),
    # A JSON body where a form is expected: allowed callers get 422, the rest never get that far.
    Case("POST", "/api/v1/assets/{asset_id}/file", (422, 422, 403, 404, 401),
         lambda w: {"file": "not a form"}),
    Case("POST", "/api/v1/assets/{asset_id}/uploads", (201, 201, 403, 404, 401),
         lambda w: {"filename": "a.mp4", "size": 100}),
    # Uploads belong to their uploader (A's artist); producers and admins see all of them.
    Case("GET", "/api/v1/uploads/{upload_id}", (200, 200, 404, 404, 401)),
    Case("GET", "/api/v1/uploads/{upload_id}/parts", (200, 200, 404, 404, 401)),
    Case("PUT", "/api/v1/uploads/{upload_id}/parts/{number}", (415, 415, 404, 404, 401)),
    Case("POST", "/api/v1/uploads/{upload_id}/complete", (422, 422, 404, 404, 401)),
    Case("DELETE", "/api/v1/uploads/{upload_id}", (204, 204, 404, 404, 401)),
    # Review: everyone reads and comments; only the author (A's artist) edits or deletes a
    # comment; directors, producers, supervisors and admins decide. Events: own studio only.
    Case("GET", "/api/v1/assets/{asset_id}/comments", (200, 200, 200, 404, 401)),
    Case("POST", "/api/v1/assets/{asset_id}/comments", (201, 201, 201, 404, 401),
         lambda w: {"body": "matrix"}),
    Case("PATCH", "/api/v1/comments/{comment_id}", (403, 200, 403, 404, 401),
         lambda w: {"body": "edited"}),
    Case("DELETE", "/api/v1/comments/{comment_id}", (403, 204, 403, 404, 401)),
    Case("POST", "/api/v1/assets/{asset_id}/decisions", (201, 403, 201, 404, 401),
         lambda w: {"decision": "approve", "note": "ok"}),
    Case("GET", "/api/v1/events", OK_FOR_ALL_WITH_CREDENTIAL),
    Case("GET", "/api/v1/assets/{asset_id}/versions/{number}/previews",
         (200, 200, 200, 404, 401)),
    # Farm: jobs of A are submitted by A's TD and can never run (they ask for a tag no node
    # has), so every cell sees the same queued job.
    Case("POST", "/api/v1/jobs", (201, 403, 403, 201, 401), lambda w: {
        "kind": "command", "frames": "1", "command": ["true"],
        "requirements": {"tags": ["matrix-never"]}}),
    Case("GET", "/api/v1/jobs", OK_FOR_ALL_WITH_CREDENTIAL),
    Case("GET", "/api/v1/job-types", OK_FOR_ALL_WITH_CREDENTIAL),
    # Commands, through a job type: TDs and admins only, in their own studio.
    Case("POST", "/api/v1/job-types/{job_type}/jobs", (201, 403, 403, 201, 401), lambda w: {
        "requirements": {"tags": ["matrix-never"]}, "settings": {"layers": [
            {"name": "one", "command": ["true"]}]}}),
    Case("GET", "/api/v1/jobs/{job_id}", (200, 200, 200, 404, 401)),
    Case("PATCH", "/api/v1/jobs/{job_id}", (200, 403, 403, 404, 401),
         lambda w: {"priority": 20}),
    # Steering a fresh queued job: pause and cancel apply, resume and retry conflict.
    Case("POST", "/api/v1/jobs/{job_id}/pause", (200, 403, 403, 404, 401)),
    Case("POST", "/api/v1/jobs/{job_id}/cancel", (200, 403, 403, 404, 401)),
    Case("POST", "/api/v1/jobs/{job_id}/resume", (409, 403, 403, 404, 401)),
    Case("POST", "/api/v1/jobs/{job_id}/retry", (409, 403, 403, 404, 401)),
    Case("GET", "/api/v1/jobs/{job_id}/tasks", (200, 200, 200, 404, 401)),
    Case("GET", "/api/v1/jobs/{job_id}/preview", (200, 200, 200, 404, 401)),
    Case("GET", "/api/v1/jobs/{job_id}/outputs", (200, 200, 200, 404, 401)),
    # The task is queued, not running: allowed callers get 409.
    Case("POST", "/api/v1/tasks/{task_id}/kill", (409, 403, 403, 404, 401)),
    # Retry asks for an ended task (409 here); skip takes a queued one.
    Case("POST", "/api/v1/tasks/{task_id}/retry", (409, 403, 403, 404, 401)),
    Case("POST", "/api/v1/tasks/{task_id}/skip", (200, 403, 403, 404, 401)),
    Case("POST", "/api/v1/jobs/{job_id}/frames/retry", (409, 403, 403, 404, 401),
         lambda w: {"frames": "1"}),
    # The task has not started: no log yet (another studio's task: not found either).
    Case("GET", "/api/v1/tasks/{task_id}/log", (404, 404, 404, 404, 401)),
    Case("GET", "/api/v1/tasks/{task_id}/log/url", (404, 404, 404, 404, 401)),
    Case("GET", "/api/v1/farm/nodes", (200, 403, 403, 200, 401)),
    # Nodes are the farm's, shared by its studios: any studio's TDs, supervisors and admins
    # look after them (FARM_NODE_MANAGERS narrows that to some studios).
    Case("GET", "/api/v1/farm/nodes/{node_id}", (200, 403, 403, 200, 401)),
    # The studio's own figures (node utilisation is the shared farm's): producers, admins.
    *(Case("GET", f"/api/v1/analytics/{part}", (200, 403, 403, 200, 401))
      for part in ("usage", "failures", "nodes", "storage", "review")),
    Case("POST", "/api/v1/farm/nodes/{node_id}/lock", (200, 403, 403, 200, 401)),
    Case("POST", "/api/v1/farm/nodes/{node_id}/drain", (200, 403, 403, 200, 401),
         lambda w: {"reason": "matrix"}),
    Case("POST", "/api/v1/farm/nodes/{node_id}/unlock", (200, 403, 403, 200, 401)),
    Case("PATCH", "/api/v1/farm/nodes/{node_id}", (200, 403, 403, 200, 401),
         lambda w: {"labels": ["matrix"]}),
]


@pytest.fixture(scope="module")
async def world(api, settings) -> AsyncIterator[World]:
    async with contract.client(base_url=api, timeout=30) as http:
        a = await register_studio(http, roles=("artist", "director", "td"))
        b = await register_studio(http, roles=())
    world = World(a, b)
    # A node as the dispatcher lists it (this session's cluster may have none joined);
    # gone afterwards, so later tests count the farm's real nodes.
    with MongoClient(settings.mongo_url.get_secret_value()) as client:
        db = client[settings.mongo_db]
        db["farm_nodes"].replace_one({"_id": world.node_id}, {
            "_id": world.node_id, "name": "matrix", "slots": 2.0, "slots_used": 0.0,
            "running_tasks": [], "gpus": 0, "tags": [], "circuit": "closed",
            "last_heartbeat_s": None, "refused": None}, upsert=True)
        yield world
        db["farm_nodes"].delete_one({"_id": world.node_id})
        db["node_controls"].delete_one({"_id": world.node_id})


async def fresh_headers(http: httpx.AsyncClient, world: World, caller: str) -> dict[str, str]:
    """A new login per cell: a row may end the caller's sessions (a password change)."""
    if caller == "no credential":
        return {}
    ctx = world.b if caller.startswith("B") else world.a
    member = ctx.admin if caller.endswith("admin") else getattr(ctx, caller.split()[1])
    response = await login(http, ctx.slug, member.email, member.password)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


Filler = Callable[[httpx.AsyncClient, World], Awaitable[str]]


async def a_user(http: httpx.AsyncClient, world: World) -> str:
    return world.a.td.user_id


async def a_fresh_key(http: httpx.AsyncClient, world: World) -> str:
    # A new key per cell: revoking is not repeatable.
    key = await create_key(http, world.a.td)
    world.created_keys.append(key["id"])
    return key["id"]


_MEDIA: list[bytes] = []


async def a_fresh_asset(http: httpx.AsyncClient, world: World) -> str:
    """An asset of A's artist with one version; fresh per cell since DELETE is not repeatable."""
    if not _MEDIA:
        import tempfile
        from pathlib import Path

        from tests.support.media import make_mp4

        _MEDIA.append(make_mp4(Path(tempfile.mkdtemp()) / "m.mp4").read_bytes())
    owner = await fresh_headers(http, world, "A artist")
    asset = await create_asset(http, owner)
    uploaded = await upload_simple(http, owner, asset["id"], _MEDIA[0])
    assert uploaded.status_code == 201, uploaded.text
    world.created_keys.append(asset["id"])
    return asset["id"]


async def a_fresh_upload(http: httpx.AsyncClient, world: World) -> str:
    owner = await fresh_headers(http, world, "A artist")
    asset = await create_asset(http, owner)
    response = await http.post(f"/api/v1/assets/{asset['id']}/uploads",
                               json={"filename": "a.mp4", "size": 100}, headers=owner)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def part_one(http: httpx.AsyncClient, world: World) -> str:
    return "1"


async def a_command_type(http: httpx.AsyncClient, world: World) -> str:
    return "layered"


# Path parameter -> a studio-A object to put there.
FILLERS: dict[str, Filler] = {"user_id": a_user, "key_id": a_fresh_key,
                              "asset_id": a_fresh_asset, "upload_id": a_fresh_upload,
                              "number": part_one, "job_type": a_command_type}


async def a_fresh_comment(http: httpx.AsyncClient, world: World) -> str:
    """A comment of A's artist; fresh per cell since DELETE is not repeatable."""
    author = await fresh_headers(http, world, "A artist")
    asset = await create_asset(http, author)
    response = await http.post(f"/api/v1/assets/{asset['id']}/comments",
                               json={"body": "first pass"}, headers=author)
    assert response.status_code == 201, response.text
    world.created_keys.append(response.json()["id"])
    return response.json()["id"]


FILLERS["comment_id"] = a_fresh_comment


async def a_queued_job(http: httpx.AsyncClient, world: World) -> str:
    td = await fresh_headers(http, world, "A td")
    response = await http.post("/api/v1/jobs", headers=td, json={
        "kind": "command", "frames": "1", "command": ["true"],
        "requirements": {"tags": ["matrix-never"]}})
    assert response.status_code == 201, response.text
    world.created_keys.append(response.json()["id"])
    return response.json()["id"]


async def a_queued_task(http: httpx.AsyncClient, world: World) -> str:
    return f"{await a_queued_job(http, world)}-00000"


async def the_node(http: httpx.AsyncClient, world: World) -> str:
    return world.node_id


FILLERS.update({"job_id": a_queued_job, "task_id": a_queued_task, "node_id": the_node})


async def a_fresh_invitation(http: httpx.AsyncClient, world: World) -> str:
    admin = await fresh_headers(http, world, "A admin")
    response = await http.post("/api/v1/invitations", headers=admin, json={
        "email": f"inv-{uuid.uuid4().hex[:10]}@example.com", "name": "Invitee"})
    assert response.status_code == 201, response.text
    world.created_keys.append(response.json()["id"])
    return response.json()["id"]


async def a_mail(http: httpx.AsyncClient, world: World) -> str:
    """A message studio A sent (an invitation's)."""
    await a_fresh_invitation(http, world)
    admin = await fresh_headers(http, world, "A admin")
    [newest, *_] = (await http.get("/api/v1/mail", headers=admin)).json()["items"]
    world.created_keys.append(newest["id"])
    return newest["id"]


FILLERS.update({"invitation_id": a_fresh_invitation, "mail_id": a_mail})


async def fill(http: httpx.AsyncClient, world: World, template: str) -> str:
    path = template
    for name in re.findall(r"{(\w+)}", template):
        assert name in FILLERS, f"no FILLERS entry makes a studio-A object for {{{name}}}"
        path = path.replace(f"{{{name}}}", await FILLERS[name](http, world))
    return path


@pytest.mark.parametrize("case", MATRIX, ids=lambda case: case.id)
async def test_matrix(http, world, case: Case):
    wrong = []
    for caller, expected in zip(CALLERS, case.expect, strict=True):
        headers = await fresh_headers(http, world, caller)
        path = await fill(http, world, case.path)
        response = await http.request(case.method, path, headers=headers, json=case.body(world))
        if response.status_code != expected:
            wrong.append(f"{caller}: {response.status_code} (table says {expected}) "
                         f"{response.text[:200]}")
        if caller == "B admin" and not case.public:
            leaked = [s for s in world.secrets if s in response.text]
            assert not leaked, f"{case.id} showed studio A's {leaked} to studio B"
        if response.status_code >= 400:
            assert set(response.json()["error"]) == {"code", "message", "details", "request_id"}
    assert not wrong, f"{case.id}:\n" + "\n".join(wrong)


async def test_every_route_has_a_row(http):
    spec = (await http.get("/openapi.json")).json()
    served = {f"{method.upper()} {path}" for path, item in spec["paths"].items()
              if path.startswith("/api/v1") for method in item}
    in_table = {case.id for case in MATRIX}
    missing, stale = sorted(served - in_table), sorted(in_table - served)
    assert not missing, "routes without a row in the authorization matrix:\n" + "\n".join(missing)
    assert not stale, "rows for routes that are not served:\n" + "\n".join(stale)
