"""The farm on a real multi-node Ray cluster: spread, circuits, retries (faults: tests/chaos)."""

from __future__ import annotations

import asyncio

import pytest

from pipelines.farm.control.dispatcher import SAVE_NODES_S
from tests.support.farm import (
    expected_frames,
    frame_writer,
    outputs,
    submit,
    tasks_of,
    wait_job,
    wait_nodes,
)
from tests.support.identity import register_studio

pytestmark = pytest.mark.cluster


@pytest.fixture
async def studio(http, farm):
    ctx = await register_studio(http, roles=("td", "artist"))
    await wait_nodes(http, ctx.td.headers, len(farm.nodes))
    return ctx


async def test_a_40_frame_job_spreads_over_two_nodes_each_frame_once(http, studio, settings):
    job = await submit(http, studio.td.headers, frames="1-40", chunk_size=2,
                       command=frame_writer(0.05))
    done = await wait_job(http, studio.td.headers, job["id"])
    assert done["status"] == "completed", done
    assert done["counts"] == {"succeeded": 20}
    tasks = await tasks_of(http, studio.td.headers, job["id"])
    assert len({t["node_id"] for t in tasks}) == 2
    assert outputs(settings, studio.studio_id, job["id"]) == expected_frames(range(1, 41))
    log = await http.get(f"/api/v1/tasks/{tasks[0]['id']}/log", headers=studio.td.headers)
    assert log.status_code == 200 and log.text.startswith(f"# task {tasks[0]['id']} attempt 1")


async def test_a_broken_command_fails_its_job_and_leaves_every_node_open(http, studio, farm):
    job = await submit(http, studio.td.headers, frames="1-4", chunk_size=1,
                       command=["no-such-tool-3f9", "{frame}"], max_attempts=3)
    done = await wait_job(http, studio.td.headers, job["id"])
    assert done["status"] == "failed" and "not found or not executable" in done["reason"]
    await asyncio.sleep(2 * SAVE_NODES_S)  # the table people read shows the circuits by now
    nodes = (await http.get("/api/v1/farm/nodes", headers=studio.td.headers)).json()["items"]
    assert {n["circuit"] for n in nodes} == {"closed"}  # the job's mistake, not the nodes'
    after = await submit(http, studio.td.headers, frames="1-2", command=["true"])
    assert (await wait_job(http, studio.td.headers, after["id"], timeout_s=30)
            )["status"] == "completed"


async def test_a_node_failing_two_jobs_opens_its_circuit_then_gets_one_trial(http, studio, farm):
    bad = farm.nodes[0].node_id
    guard = f'case "$PWD" in */{bad}/*) exit 3;; esac; '
    failures_on_bad = []
    for _ in range(2):  # one after the other: the second fails there too, so the node
        job = await submit(http, studio.td.headers, frames="1-8", chunk_size=1,
                           command=frame_writer(0.3, guard), max_attempts=5)
        done = await wait_job(http, studio.td.headers, job["id"])
        assert done["status"] == "completed", done
        tasks = await tasks_of(http, studio.td.headers, job["id"])
        assert all(t["node_id"] != bad for t in tasks)  # every success ran on the good node
        failures_on_bad.append([h for t in tasks for h in t["history"] if h["node_id"] == bad])
    # Each job failed there until its bad list (3 failures) or the open circuit kept it
    # away, plus what the node already held: 2 slots and as many dispatched ahead. The
    # second job's failure opened the circuit: two jobs failed there in a row.
    assert all(1 <= len(f) <= 6 for f in failures_on_bad), failures_on_bad
    # The node table people read is the dispatcher's, saved a moment after it changed.
    for _ in range(50):
        nodes = {n["node_id"]: n for n in (await http.get(
            "/api/v1/farm/nodes", headers=studio.td.headers)).json()["items"]}
        if nodes[bad]["circuit"] != "closed":
            break
        await asyncio.sleep(0.2)
    assert nodes[bad]["circuit"] in ("open", "half_open")
    await asyncio.sleep(4.5)  # the cooldown
    second = await submit(http, studio.td.headers, frames="1-6", chunk_size=1,
                          command=frame_writer(0.5, guard), max_attempts=5)
    done = await wait_job(http, studio.td.headers, second["id"])
    assert done["status"] == "completed"
    tasks = await tasks_of(http, studio.td.headers, second["id"])
    trials = [h for t in tasks for h in t["history"] if h["node_id"] == bad]
    assert len(trials) == 1, trials  # half-open lets exactly one task through


async def test_an_always_crashing_task_dies_after_growing_delays_and_can_be_retried(
    http, studio, db
):
    job = await submit(http, studio.td.headers, frames="1", command=["/bin/sh", "-c", "exit 7"],
                       max_attempts=3)
    done = await wait_job(http, studio.td.headers, job["id"])
    assert done["status"] == "failed"
    assert "exit" in done["reason"] and "crash" in done["reason"]
    [task] = await tasks_of(http, studio.td.headers, job["id"])
    assert task["state"] == "dead" and task["exit_code"] == 7
    assert len(task["history"]) == 3
    retries = await db["events"].find({"type": "task.retrying", "data.task_id": task["id"]}
                                      ).sort("seq", 1).to_list()
    delays = [e["data"]["retry_in_s"] for e in retries]
    assert len(delays) == 2 and delays[1] > delays[0] >= 0.4, delays  # 0.4 s, 0.8 s + jitter
    starts = [h["finished_at"] for h in task["history"]]  # no attempt began before its delay
    from datetime import datetime

    times = [datetime.fromisoformat(t).timestamp() for t in starts]
    assert all(b - a >= d for a, b, d in zip(times, times[1:], delays, strict=False))
    retried = await http.post(f"/api/v1/jobs/{job['id']}/retry", headers=studio.td.headers)
    assert retried.status_code == 200, retried.text
    again = await wait_job(http, studio.td.headers, job["id"])
    [task] = await tasks_of(http, studio.td.headers, job["id"])
    assert again["status"] == "failed" and len(task["history"]) == 6
