"""The farm's own parts fail mid-job: a node, a node's agent, the dispatcher."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import ray

from actors.node_agent import agent_name
from tests.support.chaos import until
from tests.support.farm import tasks_of, wait_nodes

pytestmark = pytest.mark.cluster
NAMESPACE = "studio-farm"


async def running_on(under_fault, node_id: str, timeout_s: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tasks = await tasks_of(under_fault.http, under_fault.headers, under_fault.job["id"])
        mine = [t for t in tasks if t["node_id"] == node_id and t["state"] == "running"]
        if mine:
            return mine
        await asyncio.sleep(0.1)
    raise AssertionError(f"no task ever ran on node {node_id}")


async def until_moved(under_fault, task_ids: set[str], node_id: str) -> None:
    """Until none of `task_ids` is held by `node_id` any more (requeued, or done)."""
    while True:
        tasks = await tasks_of(under_fault.http, under_fault.headers, under_fault.job["id"])
        if not any(t["id"] in task_ids and t["node_id"] == node_id and
                   t["state"] in ("leased", "running") for t in tasks):
            return
        await asyncio.sleep(0.2)


async def test_a_farm_node_killed_mid_job(under_fault, farm, db, http, recovered):
    await under_fault.start(seconds=1.5, max_attempts=1)
    node = farm.nodes[-1]
    held = {t["id"] for t in await running_on(under_fault, node.node_id)}
    killed_at = time.time()
    farm.remove(node)  # the raylet and every process of that node's workers die at once
    started = time.monotonic()
    await under_fault.watcher.drop()
    farm.add()  # a replacement joins, as an operator would bring one back
    await until_moved(under_fault, held, node.node_id)
    recovered("farm node killed", time.monotonic() - started)
    await under_fault.watcher.reconnect()
    # max_attempts=1: a charged loss would have failed the job. A run that ended in the
    # instant before the kill never reached its agent's report: it may run again.
    await under_fault.assert_intact(db, excused=(killed_at - 1.0, killed_at + 0.5))
    tasks = await tasks_of(http, under_fault.headers, under_fault.job["id"])
    lost = [h for t in tasks for h in t["history"] if h["failure_class"] == "node_lost"]
    assert lost and all(h["node_id"] == node.node_id for h in lost)
    await wait_nodes(http, under_fault.headers, len(farm.nodes))


async def test_a_node_agent_killed_while_its_node_stays(under_fault, farm, db, recovered):
    await under_fault.start(seconds=1.5, max_attempts=1)
    node = farm.nodes[0]
    held = {t["id"] for t in await running_on(under_fault, node.node_id)}
    agent = ray.get_actor(agent_name(node.node_id), namespace=NAMESPACE)
    pid = await agent.__ray_call__.remote(lambda _: os.getpid())
    killed_at = time.time()
    # As the kernel's OOM killer would: no goodbye, so Ray does not stop the agent's
    # children for it (it does for `ray.kill`). Ray restarts the agent on the same node.
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    await until_moved(under_fault, held, node.node_id)
    recovered("node agent killed", time.monotonic() - started)
    # The lost agent's processes died with it: none finished after the kill and ran again.
    await under_fault.assert_intact(db, excused=(killed_at - 1.0, killed_at + 0.5))


async def test_the_dispatcher_killed_mid_job_loses_no_result(under_fault, db, recovered):
    """Results that reach no dispatcher while it is away are kept, never run again."""
    await under_fault.start(seconds=0.8)
    await under_fault.until_frames_end(2)
    ray.kill(ray.get_actor("farm-dispatcher", namespace=NAMESPACE), no_restart=False)

    async def answering() -> bool:  # the restarted dispatcher, as /ready sees it
        ready = await under_fault.http.get("/ready")
        return ready.json()["checks"]["dispatcher"]["status"] == "ok"

    await asyncio.sleep(0.5)  # Ray notices the death first
    recovered("dispatcher killed", await until(answering) + 0.5)
    await under_fault.until_a_run_after(time.time())  # and leases again
    await under_fault.assert_intact(db)  # nothing excused: every run was reported
