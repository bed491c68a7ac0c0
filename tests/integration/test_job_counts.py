"""A job's counts, kept by the dispatcher as it moves tasks (pipelines/farm/control/
job_tally.py): always those a full count would give, counted from the database only when a
move is not known exactly. In-process, as tests/integration/test_dispatcher.py."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect

from pipelines.farm.protocol import FailureClass, Finished, Started
from tests.support.dispatch_farm import dispatch_farm


@pytest.fixture
async def farm(settings):
    async with dispatch_farm(settings) as farm:
        yield farm


async def test_job_counts_follow_each_move_without_counting_every_task_again(farm, monkeypatch):
    """The counts written each round are those a full count would give; the job's tasks
    are counted from the database only when a move was not known exactly (a failure here)
    and to confirm the end."""
    recounts = []
    recount = farm.store.recount

    async def counted(job):
        recounts.append(job["_id"])
        return await recount(job)

    monkeypatch.setattr(farm.store, "recount", counted)
    node = farm.directory.add("n1", slots=2)
    job_id = await farm.submit(tasks=8, max_attempts=3)
    started, done = set(), set()
    for _ in range(20):
        await farm.round()
        job = await farm.job(job_id)
        if job["status"] == "completed":
            break
        assert job["counts"] == {r["state"]: r["n"] for r in await recount({"_id": job_id})}
        for spec in node.specs:
            attempt = (spec.task_id, spec.attempt)
            if attempt in done:
                continue
            if attempt not in started and spec.frames[0] % 2 == 0:
                started.add(attempt)  # started this round, ends the next
                farm.dispatcher.report(Started.about(spec, "n1"))
                continue
            done.add(attempt)
            if attempt not in started:  # odd frames: started and ended in one batch
                farm.dispatcher.report(Started.about(spec, "n1"))
            crash = spec.frames[0] == 3 and spec.attempt == 1  # retried
            farm.dispatcher.report(Finished.about(
                spec, "n1", ok=not crash, failure_class=FailureClass.CRASH if crash else None))
    job = await farm.job(job_id)
    assert (job["status"], job["counts"]) == ("completed", {"succeeded": 8})
    # The first count, one after the failure, one to confirm the end: not one a round.
    assert len(recounts) == 3


async def test_kept_counts_are_checked_against_the_database_within_half_a_minute(farm):
    """A steer whose wake-up never reached the dispatcher (it was restarting) is seen."""
    node = farm.directory.add("n1")
    job_id = await farm.submit(tasks=3)
    await farm.round()
    await farm.store.tasks.update_one({"_id": f"{job_id}-00002"}, {"$set": {"state": "paused"}})
    farm.end(node.specs[0])
    await farm.round()
    farm.end(node.specs[1])
    await farm.round(advance_s=31.0)
    assert (await farm.job(job_id))["counts"] == {"succeeded": 2, "paused": 1}


async def test_a_wake_up_that_arrives_while_the_job_is_counted_is_not_lost(farm, monkeypatch):
    """The actor takes calls while it awaits the database: a skip made through the API
    after the count read the tasks, woken about meanwhile, is counted next round."""
    node = farm.directory.add("n1")
    job_id = await farm.submit(tasks=2)
    recount = farm.store.recount

    async def count_then_skip(job):
        rows = await recount(job)
        await farm.store.tasks.update_one({"_id": f"{job_id}-00001", "state": "ready"},
                                          {"$set": {"state": "skipped"}})
        farm.dispatcher.wake(job_id)
        monkeypatch.setattr(farm.store, "recount", recount)  # once
        return rows

    monkeypatch.setattr(farm.store, "recount", count_then_skip)
    await farm.round()
    farm.end(node.specs[0])
    await farm.round()
    await farm.round()
    job = await farm.job(job_id)
    assert (job["status"], job["counts"]) == ("completed", {"succeeded": 1, "skipped": 1})


async def test_a_failure_written_before_the_database_went_away_still_fails_the_job(
        farm, monkeypatch):
    node = farm.directory.add("n1", slots=2)
    job_id = await farm.submit(tasks=2, max_attempts=1)
    await farm.round()
    record = farm.store.record_attempt

    async def away(entry):
        monkeypatch.setattr(farm.store, "record_attempt", record)  # back for the retry
        raise AutoReconnect("connection refused")

    monkeypatch.setattr(farm.store, "record_attempt", away)
    farm.dispatcher.report(Finished.about(node.specs[0], "n1", ok=False,  # dead, then
                                          failure_class=FailureClass.CRASH))  # the error
    await farm.round()
    farm.end(node.specs[1])
    await farm.round()
    await farm.round()
    assert (await farm.job(job_id))["status"] == "failed"
