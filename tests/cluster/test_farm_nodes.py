"""Taking a node out of service as an operator does, over HTTP on the session's farm:
draining a node during a job lets its running tasks finish, lands nothing new on it, tells
the studio once it is idle, and the job completes on the other node."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.farm import farm_nodes, submit, tasks_of, wait_job, wait_nodes
from tests.support.identity import register_studio

pytestmark = pytest.mark.cluster


def nodes_of(task: dict) -> set[str]:
    """Every node the task ran on or is held by."""
    return {h["node_id"] for h in task["history"]} | ({task["node_id"]} - {None})


async def test_draining_a_node_during_a_job(http, farm):
    studio = await register_studio(http, roles=("td",))
    headers = studio.td.headers
    await wait_nodes(http, headers, len(farm.nodes))
    job = await submit(http, headers, command=["sleep", "1.5"], frames="1-10")
    busy: list[dict] = []
    for _ in range(100):
        busy = [t for t in await tasks_of(http, headers, job["id"]) if t["state"] == "running"]
        if busy:
            break
        await asyncio.sleep(0.2)
    node_id = busy[0]["node_id"]
    try:
        await drain_during(http, studio, job, node_id)
    finally:  # the session's other tests need the node
        unlocked = await http.post(f"/api/v1/farm/nodes/{node_id}/unlock", headers=headers)
    assert unlocked.status_code == 200 and unlocked.json()["state"] == "open"


async def drain_during(http, studio, job: dict, node_id: str) -> None:
    headers = studio.td.headers
    drained = await http.post(f"/api/v1/farm/nodes/{node_id}/drain", headers=headers,
                              json={"reason": "disk swap"})
    assert drained.status_code == 200, drained.text
    assert drained.json()["state"] == "draining"
    await asyncio.sleep(2.0)  # the dispatcher reads node controls once a tick
    before = {t["id"] for t in await tasks_of(http, headers, job["id"])
              if node_id in nodes_of(t)}
    done = await wait_job(http, headers, job["id"], timeout_s=120)
    assert done["status"] == "completed"
    tasks = await tasks_of(http, headers, job["id"])
    on_node = {t["id"] for t in tasks if node_id in nodes_of(t)}
    assert on_node <= before, "a task landed on the node after it was drained"
    assert all(t["state"] == "succeeded" for t in tasks)
    for _ in range(30):
        events = (await http.get("/api/v1/events", params={"room": f"studio:{studio.studio_id}"},
                                 headers=headers)).json()["items"]
        if any(e["type"] == "node.drained" for e in events):
            break
        await asyncio.sleep(0.3)
    types = [e["type"] for e in events if e["type"].startswith("node.")]
    assert types == ["node.draining", "node.drained"]
    for _ in range(20):  # the node table is written once a second
        listed = {n["node_id"]: n for n in await farm_nodes(http, headers)}
        if listed[node_id]["state"] == "drained":
            break
        await asyncio.sleep(0.3)
    assert (listed[node_id]["state"], listed[node_id]["reason"]) == ("drained", "disk swap")
    audit = (await http.get("/api/v1/audit", params={"action": "node.draining"},
                            headers=studio.admin.headers)).json()["items"]
    assert audit[0]["target"] == {"type": "node", "id": node_id}


def sample(text: str, series: str) -> float:
    """One series' value in a Prometheus text exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_the_farm_reports_its_state_and_outcomes_on_metrics(http, farm):
    """What Prometheus scrapes from /metrics: the dispatcher's figures beside the API's."""
    studio = await register_studio(http, roles=("td",))
    headers = studio.td.headers
    nodes = await wait_nodes(http, headers, len(farm.nodes))
    succeeded = 'farm_task_outcomes_total{failure_class="",outcome="succeeded"}'
    before = sample((await http.get("/metrics")).text, succeeded)
    job = await submit(http, headers, command=["true"], frames="1-3")
    assert (await wait_job(http, headers, job["id"]))["status"] == "completed"
    text = ""
    for _ in range(30):  # the dispatcher samples the farm once a tick, reports every 2 s
        text = (await http.get("/metrics")).text
        if sample(text, succeeded) - before >= 3 and \
                sample(text, 'farm_nodes{state="open"}') == len(nodes):
            break
        await asyncio.sleep(0.5)
    assert sample(text, succeeded) - before >= 3
    assert sample(text, 'farm_slots{kind="total"}') == sum(n["slots"] for n in nodes)
    assert sample(text, 'farm_nodes{state="open"}') == len(nodes), \
        [line for line in text.splitlines() if line.startswith("farm_nodes")]
    assert sample(text, "farm_dispatch_round_seconds_count") > 0
