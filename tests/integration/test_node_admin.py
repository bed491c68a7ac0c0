"""Locking, draining and labelling nodes (NodeAdmin) as the dispatcher sees it, in-process:
the real store and event log on the embedded database, fake agents, a clock moved by hand."""

from __future__ import annotations

import pytest

from pipelines.errors import Forbidden, InvalidInput
from pipelines.events.log import EventLog
from pipelines.farm.node_admin import NodeAdmin, NodeNotFound
from pipelines.farm.protocol import TaskSpec
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Role
from tests.support.dispatch_farm import dispatch_farm

TD = Principal(user_id="td-1", studio_id="studio-a", role=Role.TD, kind="session")


@pytest.fixture
async def farm(settings):
    async with dispatch_farm(settings) as farm:
        farm.admin = NodeAdmin(farm.db, EventLog(farm.db), managers=[])
        yield farm


def on(specs: list[TaskSpec], node_id: str) -> list[str]:
    return [s.task_id for s in specs if s.node_id == node_id]


async def test_a_locked_node_gets_nothing_new_and_its_running_task_finishes(farm):
    n1, n2 = farm.directory.add("n1"), farm.directory.add("n2")
    await farm.round()  # the nodes' documents are written
    await farm.admin.set_mode(TD, "n1", "lock", "new disk")
    job_id = await farm.submit(tasks=3)
    await farm.round()
    await farm.round()
    assert n1.specs == [] and len(n2.specs) == 1  # n2 busy, n1 locked: the rest waits
    assert (await farm.admin.get(TD, "n1"))["state"] == "locked"
    await farm.admin.set_mode(TD, "n1", "unlock", None)
    await farm.round()
    assert len(n1.specs) == 1  # back in service
    for _ in range(4):
        for agent in (n1, n2):
            for spec in agent.specs:
                if any(a.task_id == spec.task_id for a in agent.holding):
                    farm.end(spec)
        await farm.round()
    assert (await farm.job(job_id))["status"] == "completed"
    node = await farm.admin.get(TD, "n1")
    assert (node["state"], node["reason"]) == ("open", None)


async def test_a_drained_node_finishes_its_task_and_is_told_idle_once(farm):
    node = farm.directory.add("n1")
    job_id = await farm.submit(tasks=2)
    await farm.round()
    running = node.specs[0]
    out = await farm.admin.set_mode(TD, "n1", "drain", "maintenance")
    assert out["state"] == "draining"
    events = EventLog(farm.db)
    for _ in range(3):
        await farm.round()
    assert [e["type"] for e in await events.after("studio-a", 0)
            if e["type"].startswith("node.")] == ["node.draining"]
    farm.end(running)
    for _ in range(3):
        await farm.round()
    told = [e for e in await events.after("studio-a", 0) if e["type"] == "node.drained"]
    assert [(e["data"]["node_id"], e["room"]) for e in told] == [("n1", "studio:studio-a")]
    assert len(node.specs) == 1  # nothing new landed while draining
    assert (await farm.admin.get(TD, "n1"))["state"] == "drained"
    assert (await farm.job(job_id))["counts"].get("ready") == 1


async def test_a_label_lets_a_job_that_requires_it_run_on_that_node_only(farm):
    plain, labelled = farm.directory.add("n1"), farm.directory.add("n2")
    await farm.round()
    await farm.admin.set_labels(TD, "n2", ["houdini", "fast-disk"])
    job_id = await farm.submit(tasks=2, requirements={"tags": ["houdini"]})
    await farm.round()
    assert plain.specs == [] and [s.job_id for s in labelled.specs] == [job_id]
    assert (await farm.admin.get(TD, "n2"))["labels"] == ["fast-disk", "houdini"]


async def test_bad_requests_are_refused_and_change_nothing(farm):
    farm.directory.add("n1")
    await farm.round()
    with pytest.raises(NodeNotFound):
        await farm.admin.set_mode(TD, "no-such-node", "lock", None)
    with pytest.raises(InvalidInput) as bad:
        await farm.admin.set_labels(TD, "n1", ["ok", "Not A Tag"])
    assert bad.value.code == "invalid_label"
    await farm.db["studios"].insert_one({"_id": "studio-a", "slug": "alpha"})
    guarded = NodeAdmin(farm.db, EventLog(farm.db), managers=["ops"])
    with pytest.raises(Forbidden):
        await guarded.set_mode(TD, "n1", "lock", None)
    node = await farm.admin.get(TD, "n1")
    assert (node["state"], node["labels"]) == ("open", [])
    assert await NodeAdmin(farm.db, EventLog(farm.db), managers=["alpha"]).set_mode(
        TD, "n1", "lock", None)
