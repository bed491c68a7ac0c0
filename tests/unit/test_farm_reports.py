"""A node's reports to the dispatcher: batched while one is in flight, in order, retried."""

from __future__ import annotations

import asyncio

from pipelines.farm.node.agent import ReportQueue
from pipelines.farm.protocol import Attempt, Finished, Progressed, Started, TaskSpec


class Dispatcher:
    """Receives batches; can be made to fail the next few calls or to hold one open."""

    def __init__(self, failures: int = 0):
        self.batches: list[list] = []
        self.failures = failures
        self.gate = asyncio.Event()
        self.gate.set()

    async def report_many(self, reports):
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("dispatcher restarting")
        self.batches.append(list(reports))


IDS = {"job_id": "j", "studio_id": "s", "kind": "command", "node_id": "n1"}


def started(task_id: str, attempt: int = 1) -> Started:
    return Started(task_id=task_id, attempt=attempt, **IDS)


def progressed(task_id: str, value: float) -> Progressed:
    return Progressed(task_id=task_id, attempt=1, progress=value, **IDS)


def finished(task_id: str, attempt: int = 1) -> Finished:
    return Finished(task_id=task_id, attempt=attempt, ok=True, **IDS)


async def settle(queue: ReportQueue) -> None:
    """Until everything put so far has been sent (one task sends until the queue is empty)."""
    if queue.flushing is not None:
        await queue.flushing


async def test_a_quiet_node_sends_each_report_at_once():
    dispatcher = Dispatcher()
    queue = ReportQueue(dispatcher.report_many)
    queue.put(started("t1"))
    await settle(queue)
    queue.put(finished("t1"))
    await settle(queue)
    assert dispatcher.batches == [[started("t1")], [finished("t1")]]


async def test_reports_gather_while_a_batch_travels_and_keep_their_order():
    dispatcher = Dispatcher()
    dispatcher.gate.clear()  # the first call is slow to answer
    queue = ReportQueue(dispatcher.report_many)
    queue.put(started("t1"))
    await asyncio.sleep(0.01)
    for task_id in ("t2", "t3"):
        queue.put(started(task_id))
    queue.put(finished("t1"))
    dispatcher.gate.set()
    await settle(queue)
    assert [len(batch) for batch in dispatcher.batches] == [1, 3]
    assert [(r.report, r.task_id) for batch in dispatcher.batches for r in batch] == [
        ("started", "t1"), ("started", "t2"), ("started", "t3"), ("finished", "t1")]


async def test_a_failed_batch_is_retried_but_its_progress_is_dropped():
    dispatcher = Dispatcher(failures=2)
    queue = ReportQueue(dispatcher.report_many, first_delay_s=0.001)
    queue.put(started("t1"))
    queue.put(progressed("t1", 0.5))
    queue.put(finished("t1"))
    await settle(queue)
    assert dispatcher.batches == [[started("t1"), finished("t1")]]


async def test_only_the_latest_progress_of_a_task_waits_in_the_queue():
    dispatcher = Dispatcher()
    dispatcher.gate.clear()
    queue = ReportQueue(dispatcher.report_many)
    queue.put(started("t0"))
    await asyncio.sleep(0.01)
    for value in (0.25, 0.5, 0.75):
        queue.put(progressed("t1", value))
    queue.put(progressed("t2", 0.1))
    dispatcher.gate.set()
    await settle(queue)
    assert dispatcher.batches[1] == [progressed("t1", 0.75), progressed("t2", 0.1)]


async def test_a_dispatcher_that_never_answers_is_given_up_on_after_the_attempts():
    dispatcher = Dispatcher(failures=10**6)
    queue = ReportQueue(dispatcher.report_many, attempts=3, first_delay_s=0.001)
    queue.put(finished("t1"))
    await settle(queue)
    assert dispatcher.batches == [] and queue.pending == []


async def test_a_result_counts_as_undelivered_until_the_dispatcher_took_it():
    dispatcher = Dispatcher(failures=3)
    dispatcher.gate.clear()
    queue = ReportQueue(dispatcher.report_many, first_delay_s=0.01)
    queue.put(started("t1"))
    queue.put(finished("t1"))
    await asyncio.sleep(0)
    t1 = Attempt(task_id="t1", attempt=1)
    assert queue.undelivered_results() == [t1]  # in flight
    dispatcher.gate.set()
    await asyncio.sleep(0.015)
    assert queue.undelivered_results() == [t1]  # refused, waiting to be sent again
    await settle(queue)
    assert queue.undelivered_results() == []
    assert dispatcher.batches[0][-1] == finished("t1")


class _Store:
    async def put_bytes(self, *args, **kwargs) -> None:
        return None

    async def put_file(self, *args, **kwargs) -> None:
        return None


async def test_a_task_killed_while_it_waits_for_a_slot_is_no_longer_held(tmp_path):
    from pipelines.farm.node.agent import NodeAgent

    dispatcher = Dispatcher()

    async def slow(ctx) -> None:
        await asyncio.sleep(30)

    agent = NodeAgent("n1", dispatcher, _Store(), tmp_path, {"command": slow})
    spec = {"job_id": "j", "studio_id": "s", "kind": "command", "frames": [], "payload": {},
            "timeout_s": 60, "node_id": "n1", "slots": 1.0, "node_slots": 1.0, "attempt": 1}
    await agent.run_many([TaskSpec(task_id="a", **spec), TaskSpec(task_id="b", **spec)])
    await asyncio.sleep(0.05)
    await agent.cancel("b", 1)  # queued behind `a`: killed before it started
    await asyncio.sleep(0.05)
    await settle(agent.reports)
    assert agent.running() == [Attempt(task_id="a", attempt=1)]
    assert await agent.stop_all() == 1
    await settle(agent.reports)
    assert agent.running() == [] and agent.tasks == {}
