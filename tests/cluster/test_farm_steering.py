"""Steering as operators expect it (docs/farm.md, "Steering a job"): kill stops the process
group and fails the task, retryably; pause lets running tasks finish, or requeues them
uncharged; a missing dispatcher is named by /ready and work waits for it, never lost."""

from __future__ import annotations

import asyncio
import time

import pytest

from actors import dispatcher
from tests.support.farm import submit, tasks_of, wait_job, wait_nodes
from tests.support.identity import register_studio
from tests.support.system import appears, gone, processes_with

pytestmark = pytest.mark.cluster


@pytest.fixture
async def studio(http, farm):
    ctx = await register_studio(http, roles=("td",))
    await wait_nodes(http, ctx.td.headers, len(farm.nodes))
    return ctx


async def until(check, timeout_s: float = 30.0, every_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        await asyncio.sleep(every_s)
    raise AssertionError(f"still not so after {timeout_s} s")


def states(tasks: list[dict]) -> list[str]:
    return [t["state"] for t in tasks]


async def test_kill_stops_the_process_group_and_the_job_fails_retryably(http, studio):
    headers = studio.td.headers
    job = await submit(http, headers, command=["/bin/sh", "-c", "sleep 123.25 & wait"])
    assert await appears("sleep 123.25", timeout_s=30)
    [task] = await until(lambda: _running(http, headers, job["id"], 1))
    killed = await http.post(f"/api/v1/tasks/{task['id']}/kill", headers=headers)
    assert killed.status_code == 200 and killed.json()["state"] == "failed"
    assert await gone("sleep 123.25", timeout_s=10)  # the shell's child too: the whole group
    failed = await wait_job(http, headers, job["id"], timeout_s=15)
    assert failed["status"] == "failed" and failed["counts"] == {"failed": 1}
    [task] = await tasks_of(http, headers, job["id"])
    assert task["error_class"] == "killed"
    events = (await http.get("/api/v1/events", params={"room": f"job:{job['id']}"},
                             headers=headers)).json()["items"]
    assert "task.killed" in [e["type"] for e in events]
    audit = (await http.get("/api/v1/audit", params={"action": "task.killed"},
                            headers=studio.admin.headers)).json()["items"]
    assert audit[0]["target"] == {"type": "job", "id": job["id"], "task_id": task["id"]}
    retried = await http.post(f"/api/v1/jobs/{job['id']}/retry", headers=headers)
    assert retried.status_code == 200
    assert await appears("sleep 123.25", timeout_s=30)
    assert (await http.post(f"/api/v1/jobs/{job['id']}/cancel", headers=headers)).status_code == 200
    assert await gone("sleep 123.25", timeout_s=10)


async def test_pause_lets_running_tasks_finish_and_leases_nothing_new(http, studio):
    headers = studio.td.headers
    job = await submit(http, headers, command=["sleep", "2.5"], frames="1-12",
                       requirements={"slots": 2})  # one task per node at a time
    await until(lambda: _running(http, headers, job["id"], 1))
    paused = await http.post(f"/api/v1/jobs/{job['id']}/pause", headers=headers)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    before = states(await tasks_of(http, headers, job["id"]))
    busy = before.count("running") + before.count("leased")
    await until(lambda: _none_busy(http, headers, job["id"]))  # the running ones end
    await asyncio.sleep(1.5)  # and, a dispatcher round later, nothing else has started
    after = states(await tasks_of(http, headers, job["id"]))
    assert after.count("succeeded") == before.count("succeeded") + busy
    assert after.count("paused") == before.count("paused") and "running" not in after
    assert "ready" not in after and "leased" not in after  # held until resumed
    assert (await http.post(f"/api/v1/jobs/{job['id']}/resume", headers=headers)
            ).status_code == 200
    assert (await wait_job(http, headers, job["id"], timeout_s=120))["status"] == "completed"


async def test_a_job_whose_tasks_all_ended_while_paused_completes_on_resume(http, studio):
    headers = studio.td.headers
    job = await submit(http, headers, command=["sleep", "1.5"])
    await until(lambda: _running(http, headers, job["id"], 1))
    assert (await http.post(f"/api/v1/jobs/{job['id']}/pause", headers=headers)
            ).status_code == 200
    await until(lambda: _states_are(http, headers, job["id"], ["succeeded"]))
    await asyncio.sleep(1.5)
    assert (await http.get(f"/api/v1/jobs/{job['id']}", headers=headers)
            ).json()["status"] == "paused"
    assert (await http.post(f"/api/v1/jobs/{job['id']}/resume", headers=headers)
            ).status_code == 200
    assert (await wait_job(http, headers, job["id"], timeout_s=15))["status"] == "completed"


async def _states_are(http, headers, job_id: str, expected: list[str]) -> bool:
    return states(await tasks_of(http, headers, job_id)) == expected


async def test_pause_with_requeue_stops_running_tasks_without_costing_an_attempt(http, studio):
    headers = studio.td.headers
    job = await submit(http, headers, command=["sleep", "97.75"], frames="1-2",
                       max_attempts=1)
    await until(lambda: _running(http, headers, job["id"], 2))
    paused = await http.post(f"/api/v1/jobs/{job['id']}/pause", params={"requeue": "true"},
                             headers=headers)
    assert paused.status_code == 200
    assert await gone("sleep 97.75", timeout_s=10)
    assert states(await tasks_of(http, headers, job["id"])) == ["paused", "paused"]
    await asyncio.sleep(2)
    assert processes_with("sleep 97.75") == []  # paused: nothing was leased again
    await http.post(f"/api/v1/jobs/{job['id']}/resume", headers=headers)
    tasks = await until(lambda: _running(http, headers, job["id"], 2))
    assert all(t["attempt"] == 2 for t in tasks)  # max_attempts=1: a charged stop would kill
    await http.post(f"/api/v1/jobs/{job['id']}/cancel", headers=headers)
    assert await gone("sleep 97.75", timeout_s=10)
    wrong = await http.post(f"/api/v1/jobs/{job['id']}/cancel", params={"requeue": "true"},
                            headers=headers)
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "requeue_not_pause"


async def test_ready_names_a_missing_dispatcher_and_work_waits_for_it(http, studio, settings):
    headers = studio.td.headers
    dispatcher.stop_dispatcher()
    try:
        down = await until(lambda: _not_ready(http), timeout_s=15)
        assert down["checks"]["dispatcher"]["status"] == "down"
        assert "dispatcher" in down["checks"]["dispatcher"]["error"]
        job = await submit(http, headers, command=["true"], frames="1-3")
        await asyncio.sleep(2)
        assert (await http.get(f"/api/v1/jobs/{job['id']}", headers=headers)
                ).json()["status"] == "queued"
    finally:
        await asyncio.to_thread(dispatcher.ensure_dispatcher, settings)
    assert (await wait_job(http, headers, job["id"], timeout_s=60))["status"] == "completed"
    await until(lambda: _ready(http), timeout_s=15)


async def _running(http, headers, job_id: str, count: int) -> list[dict] | None:
    tasks = [t for t in await tasks_of(http, headers, job_id) if t["state"] == "running"]
    return tasks if len(tasks) >= count else None


async def _none_busy(http, headers, job_id: str) -> bool:
    busy = {"running", "leased"}
    return not busy & set(states(await tasks_of(http, headers, job_id)))


async def _not_ready(http) -> dict | None:
    response = await http.get("/ready")
    return response.json() if response.status_code == 503 else None


async def _ready(http) -> bool:
    return (await http.get("/ready")).status_code == 200
