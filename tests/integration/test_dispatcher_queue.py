"""The dispatcher's ready queue against the database in-process: what it reads when, and
what it does with a task or a job that changed behind its back."""

from __future__ import annotations

import pytest

from tests.support.dispatch_farm import FakeAgent, dispatch_farm


@pytest.fixture
async def farm(settings):
    async with dispatch_farm(settings) as farm:
        yield farm


async def test_a_job_the_api_wakes_for_is_read_at_once_whatever_waits_to_be_read(
        farm, monkeypatch):
    """A dispatcher that starts on a backlog reads it a little each round; a job
    submitted meanwhile (the API wakes the dispatcher with its id) does not wait behind."""
    monkeypatch.setattr("pipelines.farm.control.feed.READ_BUDGET_S", 0.0)  # backlog: never
    node = farm.directory.add("n1")
    for _ in range(3):
        await farm.submit()
    await farm.round()
    assert node.specs == []  # the backlog is listed, none of it read yet
    urgent = await farm.submit()
    farm.dispatcher.wake(urgent)
    await farm.round()
    assert [s.job_id for s in node.specs] == [urgent]


async def queued_behind_a_busy_node(farm) -> tuple[FakeAgent, str, str]:
    """A node busy with a first job, and a second job read into the queue meanwhile."""
    node = farm.directory.add("n1")
    first = await farm.submit()
    await farm.round()
    second = await farm.submit()
    farm.dispatcher.wake(second)
    await farm.round()
    return node, first, second


async def test_a_task_changed_since_the_queue_read_it_is_leased_from_its_new_attempt(farm):
    """The queue read the task before it changed; the lease reads the task and is fenced
    on its attempt, so the task is leased from its new attempt, never from a stale one."""
    node, first, second = await queued_behind_a_busy_node(farm)
    await farm.store.tasks.update_one({"_id": f"{second}-00000"}, {"$set": {"attempt": 4}})
    farm.end(node.specs[0])
    await farm.round()
    await farm.round()
    assert [(s.job_id, s.attempt) for s in node.specs] == [(first, 1), (second, 5)]
    assert (await farm.task(second))["attempt"] == 5


async def test_a_malformed_job_document_does_not_stop_the_farm(farm):
    """A job written by hand (no priority, a task without requirements) is skipped with a
    log line; every other job is scheduled as usual."""
    node = farm.directory.add("n1", slots=2)
    await farm.store.jobs.insert_one({"_id": "by-hand", "status": "queued", "studio_id": "s"})
    await farm.store.tasks.insert_one({"_id": "by-hand-00000", "job_id": "by-hand",
                                       "state": "ready", "index": 0})
    job_id = await farm.submit()
    await farm.round()
    farm.dispatcher.wake("by-hand")
    await farm.round()
    assert [s.job_id for s in node.specs] == [job_id]


async def test_a_task_is_handed_with_its_payload_as_it_is_when_leased(farm):
    """A ready task's payload may change after the queue read it (an assembly's inputs are
    filled in as frames finish): the node gets the payload as it is at the lease."""
    node, first, second = await queued_behind_a_busy_node(farm)
    await farm.store.tasks.update_one({"_id": f"{second}-00000"},
                                      {"$set": {"payload": {"argv": ["true", "now"]}}})
    farm.end(node.specs[0])
    await farm.round()
    assert [(s.job_id, s.payload) for s in node.specs] == [
        (first, {"argv": ["true"]}), (second, {"argv": ["true", "now"]})]


async def test_a_job_larger_than_its_window_is_read_in_growing_windows_in_index_order(
        farm, monkeypatch):
    """A job is read a window at a time; a window that drains is read again, twice as
    large, so every task runs, first index first, and a large job needs few reads."""
    monkeypatch.setattr("pipelines.farm.control.feed.WINDOW", 2)
    node = farm.directory.add("n1", slots=16)
    job_id = await farm.submit(tasks=20)
    placed: list[list[int]] = []
    for _ in range(6):
        before = len(node.specs)
        await farm.round()
        placed.append([int(s.task_id.rsplit("-", 1)[1]) for s in node.specs[before:]])
        for spec in node.specs[before:]:
            farm.end(spec)
    assert [i for chunk in placed for i in chunk] == list(range(20))
    assert [len(chunk) for chunk in placed[:4]] == [2, 4, 8, 6]  # windows of 2, 4, 8, 16
    assert (await farm.job(job_id))["status"] == "completed"


async def test_a_job_gets_an_eta_once_three_of_a_layer_finished(farm):
    """From the run times nodes report: none until three tasks succeeded, then the tasks
    left times their mean over the tasks running, in the job and its progress events."""
    from pipelines.events.log import EventLog
    from pipelines.farm.protocol import Finished, Started

    nodes = [farm.directory.add("n1"), farm.directory.add("n2")]
    job_id = await farm.submit(tasks=8)
    etas = []
    for _ in range(3):
        await farm.round()
        for node in nodes:
            spec = node.specs[-1]
            node.holding.clear()
            farm.dispatcher.report(Started.about(spec, spec.node_id))
            farm.dispatcher.report(Finished.about(spec, spec.node_id, ok=True,
                                                  metrics={"wall_s": 10.0}))
        await farm.round()
        etas.append((await farm.job(job_id))["eta"])
    assert etas[0] is None  # two succeeded: too few to say
    # six succeeded, the last two leased (counted half done): 10 s of work on two nodes
    assert etas[-1]["seconds"] == 5.0 and etas[-1]["based_on"] == 6
    assert etas[-1]["low_s"] == etas[-1]["high_s"] == 5.0  # no spread in the run times
    events = await EventLog(farm.db).after("studio-a", 0, room=f"job:{job_id}")
    assert [e["data"]["eta"]["seconds"] for e in events
            if e["type"] == "job.progress" and e["data"].get("eta")][-1] == 5.0


async def test_the_submitting_request_id_rides_with_the_tasks_and_their_events(farm):
    from pipelines.context import request_context
    from pipelines.events.log import EventLog
    from pipelines.farm.protocol import FailureClass

    node = farm.directory.add("n1")
    with request_context("click-7"):
        job_id = await farm.submit()
    spec = await farm.next_spec(node)
    assert spec.request_id == "click-7"
    farm.end(spec, ok=False, failure=FailureClass.CRASH)
    await farm.round()
    events = await EventLog(farm.db).after("studio-a", 0, room=f"job:{job_id}")
    assert {e["type"] for e in events} >= {"task.started", "task.retrying"}
    assert {e["request_id"] for e in events} == {"click-7"}
