"""The dispatcher in-process: real store on the embedded database, fake nodes, a clock we
move by hand. One `round()` is one `Dispatcher.step()`; nothing here needs Ray, so node
loss, lease expiry, restarts, late reports, circuits and bad nodes are each one test that
runs in well under a second (the cluster tests keep what needs real nodes)."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.errors import AutoReconnect

from pipelines.farm.protocol import (
    PROTOCOL_VERSION,
    Attempt,
    FailureClass,
    Finished,
    Started,
)
from pipelines.farm.submit.graph import Dependency, Layer
from tests.support.dispatch_farm import dispatch_farm


@pytest.fixture
async def farm(settings):
    async with dispatch_farm(settings) as farm:
        yield farm


async def test_a_task_is_handed_to_a_node_as_a_typed_spec_and_its_job_completes(farm):
    agent = farm.directory.add("n1", slots=2)
    job_id = await farm.submit(tasks=2)
    await farm.round()
    assert [(s.task_id, s.attempt, s.node_id, s.protocol) for s in agent.specs] == [
        (f"{job_id}-00000", 1, "n1", PROTOCOL_VERSION),
        (f"{job_id}-00001", 1, "n1", PROTOCOL_VERSION)]
    assert agent.specs[0].payload == {"argv": ["true"]} and agent.specs[0].frames == [0]
    for spec in agent.specs:
        farm.end(spec)
    await farm.round()
    assert [(await farm.task(job_id, i))["state"] for i in (0, 1)] == ["succeeded"] * 2
    assert (await farm.job(job_id))["status"] == "completed"


async def test_results_are_acknowledged_only_once_written(farm):
    agent = farm.directory.add("n1")
    job_id = await farm.submit()
    await farm.round()
    spec = agent.specs[0]
    acknowledged = asyncio.create_task(farm.dispatcher.report_many(
        [Finished.about(spec, "n1", ok=True)]))
    await asyncio.sleep(0.05)
    assert not acknowledged.done()  # received, not yet written: the agent keeps it
    await farm.round()
    await asyncio.wait_for(acknowledged, 5)
    assert (await farm.task(job_id))["state"] == "succeeded"


async def test_a_task_that_starts_and_ends_in_one_batch_is_written_once_with_its_start(farm):
    node = farm.directory.add("n1", slots=2)
    job_id = await farm.submit(tasks=2)
    await farm.round()
    first, second = node.specs
    farm.dispatcher.report(Started.about(first, "n1"))
    await farm.round()  # its start alone: running
    assert (await farm.task(job_id, 0))["state"] == "running"
    farm.end(first)  # (its start again, then its end)
    farm.end(second)  # start and end in the same batch
    await farm.round()
    for index in (0, 1):
        task = await farm.task(job_id, index)
        assert task["state"] == "succeeded"
        assert task["started_s"] is not None and task["started_s"] <= task["finished_s"]


async def test_a_node_is_leased_ahead_only_what_it_ends_in_a_second_or_two(farm):
    farm.configure(dispatch_ahead=1.0)
    node = farm.directory.add("n1", slots=2)
    job_id = await farm.submit(tasks=12)
    await farm.round()
    assert len(node.specs) == 4  # an idle node: its 2 slots and the whole allowance, 2
    farm.end(node.specs[0])
    await farm.round(advance_s=0.1)
    # Busy: one ended, so one held beyond its slots, not the whole allowance.
    assert len(node.specs) == 4 and len(node.holding) == 3
    await farm.round(advance_s=3.0)  # nothing ends for seconds (long frames): none more
    assert len(node.specs) == 4
    farm.end(node.specs[1])
    farm.end(node.specs[2])
    await farm.round(advance_s=0.1)
    assert len(node.specs) == 7 and len(node.holding) == 4  # two ended: two ahead
    assert await farm.store.tasks.count_documents({"job_id": job_id,
                                                   "state": "succeeded"}) == 3


async def test_a_lost_node_s_task_runs_elsewhere_without_costing_an_attempt(farm):
    farm.directory.add("n1")
    job_id = await farm.submit()
    await farm.round()
    del farm.directory.nodes["n1"]  # the node left the cluster
    n2 = farm.directory.add("n2")
    await farm.round()
    await farm.round()
    task = await farm.task(job_id)
    assert (task["failures"], task["error_class"]) == (0, "node_lost")
    assert [(s.node_id, s.attempt) for s in n2.specs] == [("n2", 2)]
    assert task["node_id"] == "n2"


async def test_a_node_lost_while_the_database_is_away_has_its_tasks_requeued_once_it_is_back(
        farm, monkeypatch):
    # Leases are not written again while held, so nothing but the dispatcher's own memory
    # knows the task must go back: it keeps it until the write lands.
    farm.directory.add("n1")
    job_id = await farm.submit()
    await farm.round()
    requeue = farm.dispatcher.outcomes.requeue_lost

    async def away(*args, **kwargs):
        raise AutoReconnect("connection refused")

    monkeypatch.setattr(farm.dispatcher.outcomes, "requeue_lost", away)
    del farm.directory.nodes["n1"]  # the node left the cluster
    await farm.round()
    await farm.round(advance_s=farm.config.lease_s)
    assert (await farm.task(job_id))["state"] == "leased"
    monkeypatch.setattr(farm.dispatcher.outcomes, "requeue_lost", requeue)
    n2 = farm.directory.add("n2")
    await farm.round()
    await farm.round()
    task = await farm.task(job_id)
    assert (task["error_class"], task["failures"]) == ("node_lost", 0)
    assert [(s.node_id, s.attempt) for s in n2.specs] == [("n2", 2)]


async def test_a_node_that_stops_reporting_is_lost_after_the_silence_allowed(farm):
    farm.directory.add("n1")
    job_id = await farm.submit()
    await farm.round()
    for _ in range(5):  # heartbeats keep it: 5 s without one would not be enough anyway
        farm.beat("n1")
        await farm.round(advance_s=5.0)
    assert (await farm.task(job_id))["attempt"] == 1
    await farm.round(advance_s=farm.config.node_silence_s + 1)  # silent since the last beat
    task = await farm.task(job_id)
    assert (task["error_class"], task["failures"]) == ("node_lost", 0)
    assert "no heartbeat" in task["error"]


async def test_a_lease_nobody_renews_and_no_node_holds_goes_back_to_the_queue(farm):
    farm.directory.add("n1")
    job_id = await farm.submit()
    farm.dispatcher._recovered = True  # the lease appears after recovery, not before it
    farm.dispatcher.held.expiries_seen_to = farm.clock()
    # As a round that died between writing a lease and handing the task over leaves it.
    await farm.store.set_task({"_id": f"{job_id}-00000"}, {
        "state": "leased", "attempt": 1, "node_id": "n1",
        "lease_expires_s": farm.clock() + farm.config.lease_s})
    await farm.round(advance_s=farm.config.lease_s / 2)
    task = await farm.task(job_id)
    assert task["state"] == "leased" and task["attempt"] == 1  # its lease holds yet
    await farm.round(advance_s=farm.config.lease_s / 2 + 0.1)
    task = await farm.task(job_id)
    assert task["error_class"] == "node_lost" and task["failures"] == 0
    assert task["attempt"] == 2 and task["state"] == "leased"  # handed out again at once


async def test_a_restarted_dispatcher_keeps_what_agents_run_and_requeues_the_rest(farm):
    agent = farm.directory.add("n1", slots=2)
    job_id = await farm.submit(tasks=2)
    await farm.round()
    kept, gone = agent.specs
    agent.holding.discard(Attempt(task_id=gone.task_id, attempt=gone.attempt))
    farm.dispatcher = farm.new_dispatcher()  # the old one died with its memory
    await farm.round()
    held = await farm.task(job_id, 0)
    assert (held["state"], held["attempt"]) == ("leased", 1)
    assert farm.dispatcher.nodes["n1"].running[kept.task_id].attempt == 1
    lost = await farm.task(job_id, 1)
    assert (lost["error_class"], lost["failures"]) == ("node_lost", 0)
    farm.end(kept)
    await farm.round()
    assert (await farm.task(job_id, 0))["state"] == "succeeded"


async def test_a_late_report_of_an_older_attempt_changes_nothing(farm):
    farm.directory.add("n1")
    job_id = await farm.submit()
    await farm.round()
    first = farm.directory.agents["n1"].specs[0]
    del farm.directory.nodes["n1"]
    n2 = farm.directory.add("n2")
    await farm.round()
    await farm.round()
    second = n2.specs[0]
    assert second.attempt == first.attempt + 1
    farm.dispatcher.report(Finished.about(first, "n1", ok=True))  # the lost node's result
    await farm.round()
    task = await farm.task(job_id)
    assert (task["state"], task["attempt"]) == ("leased", 2)
    farm.end(second)
    await farm.round()
    assert (await farm.task(job_id))["state"] == "succeeded"


async def test_crashes_of_two_jobs_open_a_node_s_circuit_and_the_work_goes_elsewhere(farm):
    farm.configure(circuit_threshold=2, bad_node_threshold=100)
    n1 = farm.directory.add("n1")
    broken = await farm.submit(tasks=1, max_attempts=3)
    for _ in range(3):  # one job failing again and again: its own problem, not the node's
        farm.end(await farm.next_spec(n1), ok=False, failure=FailureClass.CRASH)
    await farm.round()
    assert (await farm.job(broken))["status"] == "failed"
    assert farm.dispatcher.circuits.state("n1").value == "closed"
    job_id = await farm.submit(tasks=3, max_attempts=5)
    farm.end(await farm.next_spec(n1), ok=False, failure=FailureClass.CRASH)
    await farm.round()
    assert farm.dispatcher.circuits.state("n1").value == "open"  # a second job failed there
    n2 = farm.directory.add("n2", slots=3)
    await farm.round()
    await farm.round()
    assert len(n1.specs) == 4 and {s.node_id for s in n2.specs} == {"n2"}
    assert len(n2.specs) == 3
    nodes = {d["_id"]: d for d in await farm.store.nodes.find({}).to_list()}
    assert nodes["n1"]["circuit"] == "open" and nodes["n2"]["circuit"] == "closed"
    assert [(await farm.task(job_id, i))["state"] for i in range(3)] == ["leased"] * 3


async def test_a_job_stops_using_a_node_where_it_failed_too_often(farm):
    farm.configure(circuit_threshold=100, bad_node_threshold=2)
    n2 = farm.directory.add("n2")
    await farm.submit()
    blocker = await farm.next_spec(n2)  # n2 stays busy: the bad job starts on n1
    n1 = farm.directory.add("n1")
    bad_job = await farm.submit(max_attempts=5)
    for _ in range(2):
        farm.end(await farm.next_spec(n1), ok=False, failure=FailureClass.CRASH)
    await farm.round()
    assert (await farm.job(bad_job))["bad_nodes"] == ["n1"]
    other_job = await farm.submit()
    assert (await farm.next_spec(n1)).job_id == other_job  # other jobs still use n1
    farm.end(blocker)
    assert (await farm.next_spec(n2)).job_id == bad_job
    assert (await farm.task(bad_job))["attempt"] == 3


async def test_a_job_is_not_barred_from_the_only_node_its_other_layers_can_use(farm):
    farm.configure(circuit_threshold=100, bad_node_threshold=2)
    cpu = farm.directory.add("cpu")
    await farm.submit()
    blocker = await farm.next_spec(cpu)  # busy: the comp task starts on the GPU node
    gpu = farm.directory.add("gpu", gpus=1)
    job_id = await farm.submit(layers=[
        Layer("comp", "command", {"argv": ["false"]}, [1]),
        Layer("render", "command", {"argv": ["true"]}, [1], depends_on=(Dependency("comp"),),
              requirements={"slots": 1.0, "gpus": 1, "memory_bytes": 0, "tags": []})],
        max_attempts=5)
    for _ in range(2):  # the cpu node could take comp, but only this node the render
        farm.end(await farm.next_spec(gpu), ok=False, failure=FailureClass.CRASH)
    await farm.round()
    assert (await farm.job(job_id))["bad_nodes"] == []
    farm.end(blocker)


async def test_a_job_failing_on_its_only_node_is_not_barred_from_it_and_fails(farm):
    farm.configure(circuit_threshold=100, bad_node_threshold=2)
    n1 = farm.directory.add("n1")
    job_id = await farm.submit(max_attempts=4)
    for _ in range(4):  # barred from its only node, it would wait for ever
        farm.end(await farm.next_spec(n1), ok=False, failure=FailureClass.CRASH)
    await farm.round()
    job = await farm.job(job_id)
    assert job["bad_nodes"] == []
    assert job["status"] == "failed" and (await farm.task(job_id))["state"] == "dead"


async def test_a_node_speaking_another_protocol_is_refused_and_its_work_placed_elsewhere(farm):
    farm.directory.add("old", slots=4, refuses=True)
    job_id = await farm.submit()
    await farm.round()
    refused = farm.dispatcher.nodes.refused["old"]
    assert f"protocol {PROTOCOL_VERSION + 1}" in refused and f"speaks {PROTOCOL_VERSION}" in refused
    n2 = farm.directory.add("n2")
    await farm.round()
    await farm.round()
    assert [s.node_id for s in n2.specs] == ["n2"]
    assert (await farm.task(job_id))["node_id"] == "n2"
    await farm.round()
    doc = await farm.store.nodes.find_one({"_id": "old"})
    assert doc["refused"] == refused and doc["slots"] == 0.0


def _layer(name: str, frames: str, chunk_size: int = 1, *deps: Dependency) -> Layer:
    from pipelines.farm.frames import parse_frames

    return Layer(name, "command", {"argv": [name]}, parse_frames(frames) if frames else [],
                 chunk_size, deps)


async def test_a_frame_by_frame_chunk_runs_as_soon_as_its_render_chunk_is_done(farm):
    node = farm.directory.add("n1", slots=8)
    job_id = await farm.submit(layers=[
        _layer("render", "1-4", 2),
        _layer("comp", "1-4", 1, Dependency("render", per_frame=True)),
        _layer("encode", "", 1, Dependency("comp"))])
    await farm.round()
    assert [s.frames for s in node.specs] == [[1, 2], [3, 4]]  # only the render layer
    farm.end(node.specs[0])  # render 1-2 done; render 3-4 still running
    await farm.round()
    await farm.round()
    assert [(s.kind, s.payload["argv"], s.frames) for s in node.specs[2:]] == [
        ("command", ["comp"], [1]), ("command", ["comp"], [2])]
    for spec in node.specs[2:]:
        farm.end(spec)
    await farm.round()
    await farm.round()
    assert len(node.specs) == 4  # encode waits for the whole comp layer
    farm.end(node.specs[1])
    await farm.round()
    await farm.round()
    for spec in node.specs[4:]:
        farm.end(spec)
    await farm.round()
    await farm.round()
    encode = node.specs[-1]
    assert encode.payload["argv"] == ["encode"] and len(node.specs) == 7
    farm.end(encode)
    await farm.round()
    assert (await farm.job(job_id))["status"] == "completed"


async def test_a_job_after_another_waits_for_it_then_runs(farm):
    node = farm.directory.add("n1", slots=4)
    first = await farm.submit()
    second = await farm.submit(after=[first])
    await farm.round()
    assert [s.job_id for s in node.specs] == [first]
    assert (await farm.job(second))["status"] == "waiting"
    assert (await farm.job(second))["waiting_on"] == [first]
    farm.end(node.specs[0])
    await farm.round()
    await farm.round()
    await farm.round()
    assert [s.job_id for s in node.specs] == [first, second]
    job = await farm.job(second)
    assert job["waiting_on"] == [] and job["status"] in ("queued", "running")


async def test_a_job_after_a_failed_one_fails_with_the_reason_and_runs_nothing(farm):
    node = farm.directory.add("n1", slots=4)
    first = await farm.submit(max_attempts=1)
    second = await farm.submit(after=[first])
    await farm.round()
    farm.end(node.specs[0], ok=False, failure=FailureClass.BAD_INPUT)
    for _ in range(3):
        await farm.round()
    assert (await farm.job(first))["status"] == "failed"
    job = await farm.job(second)
    assert job["status"] == "failed" and job["reason"] == (
        f"job {first}, which it runs after, is failed")
    task = await farm.task(second)
    assert (task["state"], task["error_class"]) == ("failed", "prerequisite_failed")
    assert [s.job_id for s in node.specs] == [first]


async def test_a_task_bigger_than_any_node_runs_alone_on_an_idle_one(farm):
    farm.configure(dispatch_ahead=1.0)  # a 2-slot node is leased at most 4 slots' worth
    node = farm.directory.add("n1", slots=2)
    small = await farm.submit(tasks=1)
    await farm.round()
    big = await farm.submit(tasks=2, requirements={"slots": 16})
    await farm.round()
    assert [s.job_id for s in node.specs] == [small]  # busy: the big one waits
    farm.end(node.specs[0])
    await farm.round()
    assert [(s.job_id, s.slots, s.node_slots) for s in node.specs[1:]] == [(big, 16, 2)]
    farm.end(node.specs[1])
    await farm.round()
    farm.end(node.specs[2])
    await farm.round()
    assert (await farm.job(big))["status"] == "completed"


async def test_a_big_task_waits_for_the_busy_node_it_fits_rather_than_crowd_a_smaller_one(farm):
    farm.configure(dispatch_ahead=1.0)
    big = farm.directory.add("big", slots=2)
    await farm.submit(tasks=4)
    await farm.round()
    assert len(big.specs) == 4  # full: its 2 slots and 2 ahead, so out of the round's index
    small = farm.directory.add("small", slots=1)
    job_id = await farm.submit(requirements={"slots": 3})
    await farm.round()
    assert small.specs == []  # the big node takes 3 once it frees; the small one never could
    for spec in big.specs:
        farm.end(spec)
    await farm.round()
    assert (big.specs[-1].job_id, small.specs) == (job_id, [])
