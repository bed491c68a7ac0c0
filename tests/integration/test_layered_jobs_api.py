"""Layered jobs, jobs after jobs and job types through the HTTP API (no farm nodes
needed: what is checked here is decided before anything is queued)."""

from __future__ import annotations

import pytest

from tests.support.identity import register_studio

NOWHERE = {"tags": ["no-such-node"]}  # stays queued whatever nodes other tests started


@pytest.fixture
async def studio(http):
    return await register_studio(http, roles=("td", "artist"))


def comp_job(**extra) -> dict:
    return {"kind": "layered", "name": "sh010", "requirements": NOWHERE, "layers": [
        {"name": "render", "command": ["render", "{first}", "{last}"], "frames": "1-8",
         "chunk_size": 4},
        {"name": "comp", "command": ["comp", "{frame}"], "frames": "1-8",
         "depends_on": [{"layer": "render", "per_frame": True}]},
        {"name": "encode", "command": ["encode", "{output}"], "depends_on": ["comp"]}],
        **extra}


async def jobs_of(http, headers) -> list[str]:
    return [j["id"] for j in (await http.get("/api/v1/jobs", headers=headers)).json()["items"]]


async def test_a_layered_job_shows_its_graph_and_its_tasks_their_layer(http, studio):
    response = await http.post("/api/v1/jobs", json=comp_job(), headers=studio.td.headers)
    assert response.status_code == 201, response.text
    job = response.json()
    assert [(layer["name"], layer["task_count"]) for layer in job["layers"]] == [
        ("render", 2), ("comp", 8), ("encode", 1)]
    assert job["layers"][1]["depends_on"] == [{"layer": "render", "per_frame": True}]
    assert job["task_count"] == 11 and job["status"] == "queued"
    tasks = (await http.get(f"/api/v1/jobs/{job['id']}/tasks",
                            headers=studio.td.headers)).json()["items"]
    assert [t["layer"] for t in tasks[:6]] == ["render", "comp", "comp", "comp", "comp",
                                              "render"]
    assert {t["state"] for t in tasks if t["layer"] != "render"} == {"waiting"}


async def test_artists_cannot_submit_commands_by_any_route(http, studio):
    assert (await http.post("/api/v1/jobs", json=comp_job(),
                            headers=studio.artist.headers)).status_code == 403
    typed = await http.post("/api/v1/job-types/layered/jobs", headers=studio.artist.headers,
                            json={"settings": {"layers": comp_job()["layers"]}})
    assert typed.status_code == 403, typed.text


@pytest.mark.parametrize("change, layer, code", [
    (lambda layers: layers[0].update(depends_on=["encode"]), "render", "invalid_layers"),
    (lambda layers: layers[2].update(depends_on=["grade"]), "encode", "invalid_layers"),
    (lambda layers: layers[1].update(frames="1-9"), "comp", "invalid_layers"),
    (lambda layers: layers[1].update(command=["comp", "{frames}"]), "comp", "bad_template"),
    (lambda layers: layers[0].update(frames="8-1"), "render", "invalid_frame_range"),
])
async def test_a_bad_graph_is_a_422_naming_the_layer_and_stores_nothing(
        http, studio, change, layer, code):
    body = comp_job()
    change(body["layers"])
    before = await jobs_of(http, studio.td.headers)
    response = await http.post("/api/v1/jobs", json=body, headers=studio.td.headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and f"layer {layer!r}" in error["message"]
    assert await jobs_of(http, studio.td.headers) == before


async def test_a_job_after_another_waits_and_says_for_which(http, studio):
    first = (await http.post("/api/v1/jobs", json=comp_job(),
                             headers=studio.td.headers)).json()
    second = await http.post("/api/v1/jobs", headers=studio.td.headers, json={
        "kind": "command", "command": ["true"], "after": [first["id"]],
        "requirements": NOWHERE})
    assert second.status_code == 201, second.text
    assert (second.json()["status"], second.json()["after"], second.json()["waiting_on"]) == (
        "waiting", [first["id"]], [first["id"]])
    waiting = await http.get("/api/v1/jobs", params={"status": "waiting"},
                             headers=studio.td.headers)
    assert second.json()["id"] in [j["id"] for j in waiting.json()["items"]]


async def test_after_a_job_of_another_studio_or_none_is_refused(http, studio):
    other = await register_studio(http, roles=("td",))
    theirs = (await http.post("/api/v1/jobs", json=comp_job(),
                              headers=other.td.headers)).json()["id"]
    for after in ([theirs], ["0" * 32]):
        response = await http.post("/api/v1/jobs", headers=studio.td.headers, json={
            "kind": "command", "command": ["true"], "after": after})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "unknown_prerequisite"
        assert response.json()["error"]["details"][0]["loc"] == ["body", "after", "0"]


async def test_job_types_list_their_schemas_and_who_may_submit(http, studio):
    response = await http.get("/api/v1/job-types", headers=studio.artist.headers)
    assert response.status_code == 200
    types = {t["name"]: t for t in response.json()["items"]}
    assert {"command", "layered", "preview", "render", "encode"} <= set(types)
    assert "artist" in types["encode"]["who_may_submit"]
    assert types["layered"]["who_may_submit"] == ["admin", "td"]
    assert "layers" in types["layered"]["settings_schema"]["properties"]


@pytest.mark.parametrize("body, field", [
    ({"asset_id": "a1", "version": 1, "crf": 99}, "crf"),
    ({"asset_id": "a1", "version": 1, "codec": "gif"}, "codec"),
    ({"version": 1}, "asset_id"),
    ({"asset_id": "a1", "version": 1, "surprise": True}, "surprise"),
])
async def test_settings_that_break_the_type_s_schema_are_a_422_naming_the_field(
        http, studio, body, field):
    response = await http.post("/api/v1/job-types/encode/jobs", json={"settings": body},
                               headers=studio.artist.headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_settings"
    assert error["details"][0]["loc"] == ["body", "settings", field]


async def test_an_unknown_type_is_a_404_and_a_non_video_cannot_be_encoded(
        http, studio, tmp_path):
    from tests.support.assets import create_asset, upload_simple
    from tests.support.ffmpeg_media import make_image

    missing = await http.post("/api/v1/job-types/upscale/jobs", json={"settings": {}},
                              headers=studio.td.headers)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "job_type_not_found")
    asset = await create_asset(http, studio.artist.headers)
    png = make_image(tmp_path / "still.png", size="64x36").read_bytes()
    uploaded = await upload_simple(http, studio.artist.headers, asset["id"], png,
                                   filename="still.png", content_type="image/png")
    assert uploaded.status_code == 201, uploaded.text
    response = await http.post("/api/v1/job-types/encode/jobs", headers=studio.artist.headers,
                               json={"settings": {"asset_id": asset["id"], "version": 1}})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "not_a_video")
