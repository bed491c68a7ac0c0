"""A task's log while it runs and after, on a NodeAgent in-process with the real object
store: shipped in chunks as it is printed, read live through TaskLogs, stored whole at the
end, in bounded memory whatever the task prints, and kept to the last byte when the task
dies mid-line."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
import uuid

import pytest

from pipelines.farm.log_keys import attempt_prefix, chunk_prefix, log_key
from pipelines.farm.node.agent import NodeAgent
from pipelines.farm.node.runners import run_command
from pipelines.farm.protocol import Finished, Progressed, TaskSpec
from pipelines.farm.submit.task_logs import TaskLogs
from pipelines.storage import ObjectStore, storage_config


class Reports:
    def __init__(self) -> None:
        self.got: list = []

    async def report_many(self, reports) -> None:
        self.got += reports

    async def heartbeat(self, beat) -> None:
        pass

    def finished(self) -> list[Finished]:
        return [r for r in self.got if isinstance(r, Finished)]


@pytest.fixture
async def node(settings, tmp_path):
    store = ObjectStore(storage_config(settings))
    await store.ensure_bucket()
    reports = Reports()
    agent = NodeAgent("n1", reports, store, tmp_path, {"command": run_command})
    yield agent, reports, store
    await store.aclose()


def spec(script: str) -> TaskSpec:
    return TaskSpec(task_id=f"t{uuid.uuid4().hex[:8]}-00000", job_id="job", studio_id="s",
                    kind="command", attempt=1, frames=[], payload={
                        "argv": ["/bin/sh", "-c", script]}, timeout_s=300, node_id="n1")


async def ended(reports: Reports, timeout_s: float = 120) -> Finished:
    deadline = time.monotonic() + timeout_s
    while not reports.finished():
        assert time.monotonic() < deadline, "the task did not end"
        await asyncio.sleep(0.1)
    return reports.finished()[0]


async def stored(store: ObjectStore, task: TaskSpec) -> bytes:
    key = log_key(attempt_prefix(task.studio_id, task.job_id, task.task_id, 1))
    return b"".join([c async for c in store.chunks(key)])


async def test_a_task_printing_100_mb_keeps_the_agent_in_a_few_mb(node):
    agent, reports, store = node
    task = spec("yes 'a line of log output, the same again and again' | head -c 100000000")
    tracemalloc.start()
    try:
        await agent.run(task)
        done = await ended(reports)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert done.ok, done.error
    size = (await store.stat(done.log_key)).size
    assert size > 100_000_000
    print(f"\n100 MB task log: Python allocations peaked at {peak / 2**20:.1f} MiB")
    assert peak < 6 * 2**20, f"the agent held {peak / 2**20:.1f} MiB for a 100 MB log"


async def test_a_task_dying_mid_line_keeps_its_last_bytes(node):
    agent, reports, store = node
    task = spec("echo first line; printf 'half a li'; kill -9 $$")
    await agent.run(task)
    done = await ended(reports)
    assert not done.ok and done.failure_class == "crash"
    text = (await stored(store, task)).decode()
    assert text.startswith(f"# task {task.task_id} attempt 1 on node n1, job job")
    assert "first line\nhalf a li" in text and "[exit -9" in text


async def test_a_running_tasks_log_is_read_live_and_whole_after(node, settings):
    agent, reports, store = node
    task = spec("for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.4; done")
    doc = {"_id": task.task_id, "job_id": "job", "studio_id": "s", "attempt": 1,
           "state": "running"}

    class Farm:  # the task as the database has it: running until the node reported
        class tasks:  # noqa: N801 - stands for FarmStore.tasks
            @staticmethod
            async def find_one(query, projection=None):
                return doc | ({"state": "succeeded"} if reports.finished() else {})

    logs = TaskLogs(store, Farm(), poll_s=0.2)
    await agent.run(task)
    seen: list[tuple[float, str]] = []
    followed = b""
    async for data in logs.read(doc, 1, follow=True):
        followed += data
        seen += [(time.monotonic(), line) for line in data.decode().splitlines()
                 if line.startswith("tick")]
    assert [line for _, line in seen] == [f"tick {i}" for i in range(1, 7)]
    assert seen[-1][0] - seen[0][0] > 1.0  # they came as printed, not all at the end
    whole = await stored(store, task)
    assert followed == whole  # nothing twice, nothing missing
    again = b"".join([d async for d in logs.read(doc, 1, follow=False)])
    assert again == whole
    told = [r.last_line for r in reports.got if isinstance(r, Progressed) and r.last_line]
    assert told and all(line.startswith("tick ") for line in told)  # the task list's line
    # Its chunks were shipped while it ran, and went once the whole log was stored.
    prefix = chunk_prefix(attempt_prefix(task.studio_id, task.job_id, task.task_id, 1))
    assert not list(store.client.list_objects(store.bucket, prefix, recursive=True))
