"""A node agent's own cost per task: N `/bin/true` tasks through one `NodeAgent` (its
slots, the task's log stored in the embedded S3 server, its reports) against the same N
processes started the agent's hardened way (`run_tool`: `prlimit`, own session) and nothing
else, as many at once as the agent has slots. CPU is this process's own and its children's
(the task processes), per task; the S3 server's, for each task's log, is not counted.

    .venv/bin/python -m bench.node_agent --tasks 1000
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
import uuid
from pathlib import Path

from bench._harness import Row, add_json_option, write_json
from config.settings import Settings
from pipelines.embedded import EmbeddedServices
from pipelines.farm.node.agent import NodeAgent
from pipelines.farm.node.runners import run_command
from pipelines.farm.protocol import Finished, TaskSpec
from pipelines.media.runner import run_tool
from pipelines.storage import ObjectStore, storage_config


class Reports:
    """Takes the agent's reports as the dispatcher would, at once."""

    def __init__(self) -> None:
        self.finished = 0
        self.failed = 0
        self.target = 0
        self.done = asyncio.Event()

    async def report_many(self, reports) -> None:
        for report in reports:
            if isinstance(report, Finished):
                self.finished += 1
                self.failed += not report.ok
        if self.finished >= self.target:
            self.done.set()

    async def heartbeat(self, beat) -> None:
        pass


def cpu() -> tuple[float, float]:
    own, children = (resource.getrusage(resource.RUSAGE_SELF),
                     resource.getrusage(resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


async def measured(work) -> tuple[float, float, float]:
    """(wall s, own CPU s, children's CPU s) of `await work()`."""
    own, children = cpu()
    started = time.perf_counter()
    await work()
    wall = time.perf_counter() - started
    own_after, children_after = cpu()
    return wall, own_after - own, children_after - children


async def run(tasks: int, slots: int, json_path: str | None) -> None:
    data = Path(tempfile.mkdtemp(prefix="farm-bench-agent-"))
    services = EmbeddedServices(data)
    found = services.start(mongo=False)
    store = ObjectStore(storage_config(Settings(env="test", data_dir=data, **found)))
    try:
        await store.ensure_bucket()
        reports = Reports()
        agent = NodeAgent("bench", reports, store, data / "work", {"command": run_command})

        def specs(count: int) -> list[TaskSpec]:
            job = uuid.uuid4().hex
            return [TaskSpec(task_id=f"{job}-{i:05d}", job_id=job, studio_id="bench",
                             kind="command", attempt=1, frames=[i],
                             payload={"argv": ["/bin/true"]}, timeout_s=60, node_id="bench",
                             slots=1, node_slots=slots) for i in range(count)]

        async def through_agent(count: int) -> None:
            reports.target = reports.finished + count
            reports.done.clear()
            await agent.run_many(specs(count))  # all leased ahead: they wait for slots
            await reports.done.wait()

        async def spawned_alone() -> None:
            gate = asyncio.Semaphore(slots)

            async def one() -> None:
                async with gate:
                    await run_tool(["/bin/true"], timeout_s=60, memory_bytes=None,
                                   cpu_seconds=None, check=True)

            await asyncio.gather(*(one() for _ in range(tasks)))

        await through_agent(50)  # the connection pool and the code paths warmed
        base_wall, base_own, base_children = await measured(spawned_alone)
        wall, own, children = await measured(lambda: through_agent(tasks))
        assert reports.failed == 0, f"{reports.failed} tasks failed"
    finally:
        await store.aclose()
        services.stop()
    ms = 1000 / tasks
    print(f"{tasks} `/bin/true` tasks, {slots} slots")
    print(f"processes alone (run_tool): {tasks / base_wall:7.1f} tasks/s  "
          f"own CPU {base_own * ms:5.2f} ms/task  processes {base_children * ms:5.2f} ms/task")
    print(f"through the node agent:     {tasks / wall:7.1f} tasks/s  "
          f"own CPU {own * ms:5.2f} ms/task  processes {children * ms:5.2f} ms/task")
    print(f"agent's CPU beyond the spawn: {(own - base_own) * ms:.2f} ms/task "
          "(slots, log to storage, reports)")
    write_json(json_path, "node_agent", [
        Row(f"{tasks} `/bin/true` tasks, {slots} slots: throughput", "tasks/s",
            "processes alone (run_tool)", tasks / base_wall, "through the node agent",
            tasks / wall),
        Row(f"{tasks} `/bin/true` tasks: CPU of the starting process per task", "ms",
            "processes alone (run_tool)", base_own * ms, "through the node agent", own * ms,
            better="lower")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=4)
    add_json_option(parser)
    args = parser.parse_args()
    asyncio.run(run(args.tasks, args.slots, args.json))


if __name__ == "__main__":
    main()
