"""Retrying and skipping single tasks (TaskActions) and what the job and the dispatcher make
of it, in-process: the real store, event log and dispatcher on the embedded database."""

from __future__ import annotations

import pytest

from pipelines.errors import Conflict, Forbidden
from pipelines.events.log import EventLog
from pipelines.farm.frames import BadFrameRange, parse_frames
from pipelines.farm.protocol import FailureClass
from pipelines.farm.submit.graph import Dependency, Layer
from pipelines.farm.submit.jobs import JobService
from pipelines.farm.submit.task_actions import TaskActions
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Role
from tests.support.dispatch_farm import dispatch_farm

SUPERVISOR = Principal(user_id="sup", studio_id="studio-a", role=Role.SUPERVISOR,
                       kind="session")
ARTIST = Principal(user_id="art", studio_id="studio-a", role=Role.ARTIST, kind="session")


@pytest.fixture
async def farm(settings):
    async with dispatch_farm(settings) as farm:
        async def wake(job_id=None):
            farm.dispatcher.wake(job_id)

        farm.actions = TaskActions(JobService(farm.db, EventLog(farm.db), wake=wake,
                                              clock=farm.clock))
        yield farm


async def run_out(farm, node, rounds: int = 6) -> None:
    """Every task handed to the node succeeds, round after round."""
    for _ in range(rounds):
        for spec in list(node.specs):
            if any(a.task_id == spec.task_id and a.attempt == spec.attempt
                   for a in node.holding):
                farm.end(spec)
        await farm.round()


def layer(name: str, frames: str, *deps: Dependency) -> Layer:
    return Layer(name, "command", {"argv": [name]}, parse_frames(frames), 1, deps)


async def test_skipping_a_task_counts_it_done_for_its_dependents_and_the_job(farm):
    node = farm.directory.add("n1", slots=4)
    job_id = await farm.submit(layers=[
        layer("render", "1-2"), layer("comp", "1-2", Dependency("render", per_frame=True))])
    spec = await farm.next_spec(node)
    farm.end(spec, ok=False, failure=FailureClass.BAD_INPUT)  # dead at once: bad input
    await farm.round()
    dead = await farm.task(job_id, int(spec.task_id.rsplit("-", 1)[1]))
    assert dead["state"] == "dead"
    assert (await farm.job(job_id))["status"] == "failed"
    skipped = await farm.actions.skip(SUPERVISOR, dead["_id"])
    assert skipped["state"] == "skipped"
    await run_out(farm, node)
    job = await farm.job(job_id)
    assert job["status"] == "completed" and job["counts"] == {"succeeded": 3, "skipped": 1}
    comp = [t for t in await farm.store.tasks.find({"job_id": job_id}).to_list()
            if t["layer"] == "comp"]
    assert {t["state"] for t in comp} == {"succeeded"}  # its dependent ran all the same


async def test_retrying_an_ended_task_runs_it_again_and_the_job_completes_again(farm):
    node = farm.directory.add("n1", slots=4)
    job_id = await farm.submit(tasks=3)
    await run_out(farm, node)
    assert (await farm.job(job_id))["status"] == "completed"
    again = await farm.actions.retry(SUPERVISOR, f"{job_id}-00001")
    assert again["state"] == "waiting"
    assert (await farm.job(job_id))["status"] == "queued"
    handed = len(node.specs)
    await run_out(farm, node)
    assert [s.task_id for s in node.specs[handed:]] == [f"{job_id}-00001"]
    job = await farm.job(job_id)
    assert job["status"] == "completed" and job["counts"] == {"succeeded": 3}
    events = await EventLog(farm.db).after("studio-a", 0, room=f"job:{job_id}")
    assert [e["data"]["task_id"] for e in events if e["type"] == "task.retried"] == \
        [f"{job_id}-00001"]


async def test_retrying_frames_runs_the_tasks_holding_them(farm):
    node = farm.directory.add("n1", slots=8)
    job_id = await farm.submit(layers=[layer("render", "1-6")])
    await run_out(farm, node)
    handed = len(node.specs)
    await farm.actions.retry_frames(SUPERVISOR, job_id, "2-3,6")
    await run_out(farm, node)
    assert sorted(s.frames[0] for s in node.specs[handed:]) == [2, 3, 6]
    assert (await farm.job(job_id))["status"] == "completed"


async def test_refusals_change_nothing(farm):
    farm.directory.add("n1")
    job_id = await farm.submit(tasks=2)
    task_id = f"{job_id}-00000"
    with pytest.raises(Conflict) as nothing:
        await farm.actions.retry(SUPERVISOR, task_id)  # queued: it has not ended
    assert nothing.value.code == "nothing_to_retry"
    with pytest.raises(Forbidden):  # an artist steers only the jobs they submitted
        await farm.actions.skip(ARTIST, task_id)
    with pytest.raises(BadFrameRange):
        await farm.actions.retry_frames(SUPERVISOR, job_id, "10-1")
    await farm.round()  # leased now
    with pytest.raises(Conflict) as running:
        await farm.actions.skip(SUPERVISOR, task_id)
    assert running.value.code == "task_state"
    assert (await farm.task(job_id))["state"] == "leased"
