"""A simulated farm around the real Dispatcher: the real store on the embedded database,
node agents that take tasks, report them started at once and finished after a simulated
duration, and heartbeat every few seconds, as `farm join` agents do."""

from __future__ import annotations

import asyncio
import heapq
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import monitoring

from pipelines.db import Database
from pipelines.embedded import EmbeddedServices
from pipelines.events.log import EventLog
from pipelines.farm.control.config import DispatchConfig, collect_garbage_rarely
from pipelines.farm.control.dispatcher import Dispatcher
from pipelines.farm.control.ports import NodeInfo
from pipelines.farm.control.task_view import NodeView
from pipelines.farm.models import JobCommon, Requirements
from pipelines.farm.protocol import Attempt, Finished, Heartbeat, Started, TaskSpec
from pipelines.farm.store import FarmStore
from pipelines.farm.submit.graph import Layer, compile_tasks
from pipelines.farm.submit.records import new_job

HEARTBEAT_S = 5.0
DURATION_S = (20.0, 60.0)


class Commands(monitoring.CommandListener):
    """Counts the database commands the dispatcher sends (one bulk write is one), and the
    aggregations among them (counting a job's tasks is one per layer)."""

    def __init__(self) -> None:
        self.count = self.aggregations = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.count += 1
        self.aggregations += event.command_name == "aggregate"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass
class SimAgent:
    farm: SimulatedFarm
    node_id: str
    holding: dict[str, TaskSpec] = field(default_factory=dict)

    async def run_many(self, specs: list[TaskSpec]) -> None:
        for spec in specs:
            self.holding[spec.task_id] = spec
            self.farm.handed(spec)

    async def cancel(self, task_id: str, attempt: int) -> None:
        self.holding.pop(task_id, None)

    async def running(self) -> list[Attempt]:
        return held(self)


class SimDirectory:
    def __init__(self, farm: SimulatedFarm, nodes: list[NodeView]):
        self.infos = [NodeInfo(n.node_id, n.slots_total, n.gpus, n.memory_bytes, n.tags,
                               n.node_id) for n in nodes]
        self.agents = {n.node_id: SimAgent(farm, n.node_id) for n in nodes}

    async def discover(self) -> list[NodeInfo]:
        return self.infos

    def agent(self, node_id: str) -> SimAgent:
        return self.agents[node_id]

    def forget(self, node_id: str) -> None:
        pass


class SimulatedFarm:
    def __init__(self, services: EmbeddedServices, db: Database, commands: Commands,
                 nodes: list[NodeView]):
        self.services, self.db, self.commands = services, db, commands
        self.directory = SimDirectory(self, nodes)
        self.slots = sum(n.slots_total for n in nodes)
        collect_garbage_rarely()  # as the dispatcher's actor does in its process
        self.dispatcher = Dispatcher(FarmStore(db), self.directory, EventLog(db),
                                     DispatchConfig(dispatch_ahead=0.0))
        self.ending: list[tuple[float, str, TaskSpec]] = []
        self.rng = random.Random(7)
        self.insert_s = 0.0
        self.placed = 0

    @classmethod
    async def start(cls, data_dir: Path, nodes: list[NodeView],
                    jobs: list[dict]) -> SimulatedFarm:
        services = EmbeddedServices(data_dir)
        found = services.start(s3=False)
        commands = Commands()
        monitoring.register(commands)  # every client made after this one reports to it
        db = Database(found["mongo_url"], "farm", timeout_s=120)
        await db.ensure_indexes()
        farm = cls(services, db, commands, nodes)
        started = time.perf_counter()
        await farm._insert(jobs)
        farm.insert_s = time.perf_counter() - started
        return farm

    async def _insert(self, specs: list[dict]) -> None:
        store = FarmStore(self.db)
        for spec in specs:
            common = JobCommon(priority=spec["priority"], requirements=Requirements(
                slots=spec["slots"], gpus=spec["gpus"], memory_bytes=spec["memory_bytes"],
                tags=sorted(spec["tags"])))
            job = new_job(spec["studio_id"], "sim", common, "command", spec["created_s"])
            job["bad_nodes"] = sorted(spec["bad_nodes"])
            tasks = compile_tasks(job, [Layer("command", "command", {"argv": ["true"]},
                                              list(range(1000)))])
            await store.insert_job(job, tasks)

    def handed(self, spec: TaskSpec) -> None:
        self.placed += 1
        self.dispatcher.report(Started.about(spec, spec.node_id))
        ends = time.monotonic() + self.rng.uniform(*DURATION_S)
        heapq.heappush(self.ending, (ends, spec.task_id, spec))

    def _finish_due(self) -> None:
        now = time.monotonic()
        while self.ending and self.ending[0][0] <= now:
            _, task_id, spec = heapq.heappop(self.ending)
            agent = self.directory.agents[spec.node_id]
            if agent.holding.pop(task_id, None) is not None:
                self.dispatcher.report(Finished.about(spec, spec.node_id, ok=True))

    def _heartbeats(self, due: dict[str, float]) -> None:
        now = time.monotonic()
        for node_id, at in due.items():
            if at <= now:
                self.dispatcher.heartbeat(Heartbeat(
                    node_id=node_id, running=held(self.directory.agents[node_id])))
                due[node_id] = now + HEARTBEAT_S

    async def run(self, seconds: float) -> dict:
        rng = random.Random(3)
        beats = {n: time.monotonic() + rng.uniform(0, HEARTBEAT_S)
                 for n in self.directory.agents}
        rounds: list[float] = []
        started = time.monotonic()
        commands_before, samples = self.commands.count, []
        aggregations_before = self.commands.aggregations
        while time.monotonic() - started < seconds:
            self._finish_due()
            self._heartbeats(beats)
            began = time.perf_counter()
            await self.dispatcher.step()
            rounds.append(time.perf_counter() - began)
            # As `run_forever` does: reports gathered a few milliseconds make one round.
            await asyncio.sleep(self.dispatcher.config.coalesce_s)
            samples.append((time.monotonic() - started,
                            sum(len(a.holding) for a in self.directory.agents.values())))
        elapsed = time.monotonic() - started
        # Filled: when the running tasks first reach 99% of the most that ran at once before
        # any task ended (the queue's requirements leave some slots of some shapes unused,
        # as on a real farm; once tasks end, other jobs' tasks fit and the count creeps up).
        peak = max(count for _, count in samples)
        filling = [(at, count) for at, count in samples if at < DURATION_S[0]] or samples
        most = max(count for _, count in filling)
        fill_s = next(at for at, count in filling if count >= 0.99 * most)
        return {"fill_s": fill_s, "running": peak, "slots": self.slots, "rounds": len(rounds),
                "first_round_s": rounds[0], "round_p50_s": statistics.median(rounds),
                "round_p99_s": statistics.quantiles(rounds, n=100)[98]
                if len(rounds) >= 2 else rounds[0],
                "placed_per_s": self.placed / elapsed,
                "commands_per_task": (self.commands.count - commands_before)
                / max(1, self.placed),
                "aggregations_per_s": (self.commands.aggregations - aggregations_before)
                / elapsed, "insert_s": self.insert_s}

    async def stop(self) -> None:
        await self.db.close()
        self.services.stop()


def held(agent: SimAgent) -> list[Attempt]:
    return [Attempt(task_id=s.task_id, attempt=s.attempt) for s in agent.holding.values()]
