"""Render jobs through the API without farm nodes: validation, roles, the task DAG."""

from __future__ import annotations

import pytest

from tests.support import contract
from tests.support.assets import create_asset, upload_simple
from tests.support.farm import tasks_of
from tests.support.identity import register_studio
from tests.support.render import render_body, scene_and_target

BLEND = b"BLENDER-v405REND" + bytes(4096)  # a header is all submission looks at
NEVER = {"requirements": {"tags": ["render-api-never"]}}  # stays queued on any farm


@pytest.fixture(scope="module")
async def studio(api):

    async with contract.client(base_url=api, timeout=30) as http:
        return await register_studio(http, roles=("td", "artist"))


async def post(http, headers, body):
    return await http.post("/api/v1/jobs", json=body | NEVER, headers=headers)


async def test_a_render_job_is_a_dag_of_spread_chunks_previews_and_an_assembly(http, studio):
    headers = studio.artist.headers
    setup = await scene_and_target(http, headers, BLEND)
    response = await post(http, headers, render_body(setup, "1-24", chunk_size=2))
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["kind"] == "render" and job["task_count"] == 15
    tasks = await tasks_of(http, headers, job["id"])
    kinds = [t["kind"] for t in tasks]
    assert kinds.count("render") == 12 and kinds[3] == "progressive" and kinds[-1] == "assemble"
    assert [t["frames"] for t in tasks[:3]] == [[1, 2], [23, 24], [11, 12]]
    assert tasks[3]["depends_on"] == [t["id"] for t in tasks[:3]]
    assert tasks[-1]["state"] == "waiting" and tasks[-1]["waits_for_layers"] == ["render"]
    assert {t["layer"] for t in tasks} == {"render", "progressive", "assemble"}
    shown = (await http.get(f"/api/v1/jobs/{job['id']}", headers=headers)).json()["render"]
    assert shown["frame_count"] == 24 and shown["frames_done"] == 0
    assert shown["samples"] == 2 and shown["preview"] is None
    assert shown.get("published") is None
    links = await http.get(f"/api/v1/jobs/{job['id']}/preview", headers=headers)
    assert links.status_code == 200 and links.json()["progressive"] is None


async def test_render_bodies_that_cannot_work_are_refused(http, studio, mp4_bytes):
    headers = studio.artist.headers
    setup = await scene_and_target(http, headers, BLEND)
    shot = await create_asset(http, headers, kind="shot")
    video = await create_asset(http, headers, kind="plate")
    await upload_simple(http, headers, video["id"], mp4_bytes)
    other = await register_studio(http, roles=())
    foreign = await create_asset(http, other.admin.headers, kind="render")
    by_td = await create_asset(http, studio.td.headers, kind="render")
    body = render_body(setup)
    cases = [
        ({k: v for k, v in body.items() if k != "render"}, 422, "render_missing"),
        ({k: v for k, v in body.items() if k != "frames"}, 422, "frames_missing"),
        (body | {"render": body["render"] | {"target_asset_id": shot["id"]}}, 422,
         "target_not_render"),
        (body | {"render": body["render"] | {"target_asset_id": foreign["id"]}}, 404,
         "asset_not_found"),
        (body | {"render": body["render"] | {"target_asset_id": by_td["id"]}}, 403,
         "forbidden"),
        (body | {"render": body["render"] | {"scene": None}}, 422, "scene_missing"),
        (body | {"render": body["render"] | {"scene": {"asset_id": video["id"],
                                                      "version": 1}}}, 422,
         "scene_unsupported"),
        (body | {"render": body["render"] | {"scene": {"asset_id": setup.scene_asset["id"],
                                                      "version": 9}}}, 404,
         "version_not_found"),
        (body | {"render": body["render"] | {"renderer": "command"},
                 "command": ["dcc", "{scene}", "{frame}", "{output}"]}, 403, "forbidden"),
        (body | {"render": body["render"] | {"output_format": "TIFF"}}, 422, None),
    ]
    for bad, status, code in cases:
        response = await post(http, headers, bad)
        assert response.status_code == status, (bad, response.text)
        if code:
            assert response.json()["error"]["code"] == code, response.text


async def test_tds_render_with_a_command_template(http, studio):
    headers = studio.td.headers
    setup = await scene_and_target(http, headers, BLEND)
    body = render_body(setup, "1-4", chunk_size=2) | {
        "command": ["dcc", "--scene", "{scene}", "-f", "{frame:04d}", "-o", "{output}"]}
    body["render"] |= {"renderer": "command", "scene": None}
    response = await post(http, headers, body)
    assert response.status_code == 201, response.text
    typo = body | {"command": ["dcc", "{frames}"]}
    response = await post(http, headers, typo)
    assert response.status_code == 422 and response.json()["error"]["code"] == "bad_template"
