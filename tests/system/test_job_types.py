"""A studio's own job type, as a studio adds one: its package installed beside `farm up`
(the stack's fixture installs tests/fixtures/turntable), then listed, checked and run
over HTTP like any built-in type."""

from __future__ import annotations

from tests.support.farm import tasks_of, wait_job
from tests.system.test_first_run import register


async def test_a_plugin_job_type_is_listed_checked_and_runs(api, stack):
    _, headers = await register(api, "plugins", stack.mail_dir)
    listed = await api.get("/api/v1/job-types", headers=headers)
    assert listed.status_code == 200, listed.text
    types = {t["name"]: t for t in listed.json()["items"]}
    assert {"command", "layered", "preview", "render", "encode", "turntable"} <= set(types)
    turntable = types["turntable"]
    assert turntable["title"] == "Turntable" and "artist" in turntable["who_may_submit"]
    assert turntable["settings_schema"]["properties"]["turns"]["maximum"] == 360

    refused = await api.post("/api/v1/job-types/turntable/jobs", headers=headers,
                             json={"settings": {"turns": 0}})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"][0]["loc"] == ["body", "settings", "turns"]

    submitted = await api.post("/api/v1/job-types/turntable/jobs", headers=headers,
                               json={"name": "hero turntable", "settings": {"turns": 3}})
    assert submitted.status_code == 201, submitted.text
    job = submitted.json()
    assert job["kind"] == "turntable"
    assert [(layer["name"], layer["task_count"]) for layer in job["layers"]] == [
        ("angles", 3), ("sheet", 1)]
    done = await wait_job(api, headers, job["id"], timeout_s=120)
    assert done["status"] == "completed", done
    tasks = await tasks_of(api, headers, job["id"])
    outputs = sorted(key.rsplit("/", 1)[1] for t in tasks for key in t["outputs"])
    assert outputs == ["angle_0001.txt", "angle_0002.txt", "angle_0003.txt",
                       "contact_sheet.txt"]
