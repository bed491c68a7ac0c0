"""The jobs API without farm nodes: validation, roles, tenancy, steering."""

from __future__ import annotations

import pytest

from tests.support.farm import frame_writer, submit
from tests.support.identity import register_studio


@pytest.fixture
async def studio(http):
    return await register_studio(http, roles=("td", "artist", "supervisor"))


async def test_only_tds_and_admins_submit_command_jobs(http, studio):
    body = {"kind": "command", "frames": "1-3", "command": frame_writer()}
    for member, expected in ((studio.artist, 403), (studio.supervisor, 403), (studio.td, 201),
                             (studio.admin, 201)):
        response = await http.post("/api/v1/jobs", json=body, headers=member.headers)
        assert response.status_code == expected, (member.role, response.text)


@pytest.mark.parametrize("body", [
    {"kind": "command", "frames": "1-3"},  # no command
    {"kind": "command", "frames": "10-1", "command": ["true"]},
    {"kind": "command", "frames": "1-3", "command": ["echo", "{frames}"]},
    {"kind": "command", "frames": "1", "command": []},
    {"kind": "command", "frames": "1", "command": ["echo", "a\u0000b"]},
    {"kind": "command", "frames": "1", "command": ["true"], "priority": 101},
    {"kind": "command", "frames": "1", "command": ["true"], "chunk_size": 0},
    {"kind": "command", "frames": "1", "command": ["true"], "studio_id": "other"},
    {"kind": "command", "frames": "1", "command": ["true"], "status": "completed"},
    {"kind": "render", "frames": "1"},
    {"kind": "preview"},
])
async def test_bad_job_bodies_are_4xx_and_store_nothing(http, studio, body):
    before = (await http.get("/api/v1/jobs", headers=studio.td.headers)).json()["items"]
    response = await http.post("/api/v1/jobs", json=body, headers=studio.td.headers)
    assert response.status_code in (404, 422), response.text
    assert set(response.json()["error"]) == {"code", "message", "details", "request_id"}
    after = (await http.get("/api/v1/jobs", headers=studio.td.headers)).json()["items"]
    assert after == before


async def test_preview_of_another_studios_version_is_404(http, studio, mp4_bytes):
    from tests.support.assets import create_asset, upload_simple

    other = await register_studio(http, roles=())
    asset = await create_asset(http, other.admin.headers)
    await upload_simple(http, other.admin.headers, asset["id"], mp4_bytes)
    response = await http.post("/api/v1/jobs", headers=studio.admin.headers,
                               json={"kind": "preview", "asset_id": asset["id"], "version": 1})
    assert response.status_code == 404


async def test_steering_a_job(http, studio):
    # A tag no farm node has: the job stays queued whatever nodes other tests started.
    job = await submit(http, studio.td.headers, frames="1-4", command=frame_writer(),
                       priority=10, requirements={"tags": ["no-such-node"]})
    url = f"/api/v1/jobs/{job['id']}"
    assert (await http.get(url, headers=studio.artist.headers)).json()["task_count"] == 4
    assert (await http.post(f"{url}/pause", headers=studio.artist.headers)).status_code == 403
    paused = await http.post(f"{url}/pause", headers=studio.td.headers)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    # Each answer counts what the steer did, not what the dispatcher last wrote.
    assert paused.json()["counts"] == {"paused": 4}
    assert (await http.post(f"{url}/pause", headers=studio.td.headers)).status_code == 409
    assert (await http.patch(url, json={"priority": 90}, headers=studio.supervisor.headers)
            ).json()["priority"] == 90
    resumed = await http.post(f"{url}/resume", headers=studio.td.headers)
    assert resumed.json()["status"] == "queued" and resumed.json()["counts"] == {"ready": 4}
    assert (await http.post(f"{url}/retry", headers=studio.td.headers)).status_code == 409
    cancelled = await http.post(f"{url}/cancel", headers=studio.supervisor.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["counts"] == {"cancelled": 4}
    tasks = (await http.get(f"{url}/tasks", headers=studio.td.headers)).json()["items"]
    assert {t["state"] for t in tasks} == {"cancelled"}
    # One operation per action: anything else is no route at all.
    assert (await http.post(f"{url}/frobnicate", headers=studio.td.headers)).status_code == 404


async def test_another_studio_sees_no_job_task_or_log(http, studio):
    job = await submit(http, studio.td.headers, frames="1", command=frame_writer())
    other = await register_studio(http, roles=())
    task_id = f"{job['id']}-00000"
    for method, path in (("GET", f"/api/v1/jobs/{job['id']}"),
                         ("GET", f"/api/v1/jobs/{job['id']}/tasks"),
                         ("POST", f"/api/v1/jobs/{job['id']}/cancel"),
                         ("PATCH", f"/api/v1/jobs/{job['id']}"),
                         ("POST", f"/api/v1/tasks/{task_id}/kill"),
                         ("GET", f"/api/v1/tasks/{task_id}/log")):
        body = {"priority": 1} if method == "PATCH" else None
        response = await http.request(method, path, json=body, headers=other.admin.headers)
        assert response.status_code == 404, (path, response.text)
    listed = (await http.get("/api/v1/jobs", headers=other.admin.headers)).json()["items"]
    assert job["id"] not in [j["id"] for j in listed]
