"""The dispatcher in-process, for the tests in tests/integration/test_dispatcher*.py: the
real store on the embedded database (a database of its own per test), fake nodes and
agents, a clock moved by hand. One `round()` is one `Dispatcher.step()`."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from pipelines.db import Database
from pipelines.events.log import EventLog
from pipelines.farm.control.config import DispatchConfig
from pipelines.farm.control.dispatcher import Dispatcher
from pipelines.farm.control.ports import NodeInfo
from pipelines.farm.models import JobCommon
from pipelines.farm.protocol import (
    PROTOCOL_VERSION,
    Attempt,
    FailureClass,
    Finished,
    Heartbeat,
    ProtocolMismatch,
    Started,
    TaskSpec,
)
from pipelines.farm.store import FarmStore
from pipelines.farm.submit.graph import Layer, compile_tasks
from pipelines.farm.submit.records import new_job

TICK = 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeAgent:
    """Takes tasks and holds them until told they ended; never runs anything."""

    def __init__(self, refuses: bool = False):
        self.specs: list[TaskSpec] = []
        self.holding: set[Attempt] = set()
        self.cancelled: list[tuple[str, int]] = []
        self.refuses = refuses

    async def run_many(self, specs: list[TaskSpec]) -> None:
        if self.refuses:  # an agent of another version, as `read_specs` answers there
            raise ProtocolMismatch("the dispatcher", PROTOCOL_VERSION + 1)
        self.specs += specs
        self.holding |= {Attempt(task_id=s.task_id, attempt=s.attempt) for s in specs}

    async def cancel(self, task_id: str, attempt: int) -> None:
        self.cancelled.append((task_id, attempt))
        self.holding.discard(Attempt(task_id=task_id, attempt=attempt))

    async def running(self) -> list[Attempt]:
        return sorted(self.holding, key=lambda a: (a.task_id, a.attempt))


class FakeDirectory:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.agents: dict[str, FakeAgent] = {}

    def add(self, node_id: str, slots: float = 1.0, refuses: bool = False,
            gpus: int = 0) -> FakeAgent:
        self.nodes[node_id] = NodeInfo(node_id, slots, gpus=gpus, name=node_id)
        self.agents[node_id] = FakeAgent(refuses)
        return self.agents[node_id]

    async def discover(self) -> list[NodeInfo]:
        return list(self.nodes.values())

    def agent(self, node_id: str) -> FakeAgent:
        return self.agents[node_id]

    def forget(self, node_id: str) -> None:
        pass


class Farm:
    def __init__(self, db, **config) -> None:
        self.db, self.clock, self.directory = db, Clock(), FakeDirectory()
        self.store = FarmStore(db)
        self.configure(**config)

    def configure(self, **config) -> None:
        # No leasing ahead of free slots: each lease below is one the test asked for.
        self.config = DispatchConfig(**{"tick_s": TICK, "retry_initial_s": 0.5,
                                        "retry_max_s": 0.5, "dispatch_ahead": 0.0} | config)
        self.dispatcher = self.new_dispatcher()

    def new_dispatcher(self) -> Dispatcher:
        return Dispatcher(self.store, self.directory, EventLog(self.db), self.config,
                          clock=self.clock)

    async def submit(self, tasks: int = 1, layers: list[Layer] | None = None,
                     **common) -> str:
        """A job of `layers`; by default one command layer of `tasks` one-frame chunks."""
        job = new_job("studio-a", "user-a", JobCommon(**common), "command", self.clock())
        docs = compile_tasks(job, layers or [
            Layer("command", "command", {"argv": ["true"]}, list(range(tasks)))])
        await self.store.insert_job(job, docs)
        return job["_id"]

    async def next_spec(self, agent: FakeAgent) -> TaskSpec:
        """Rounds until the agent is handed a task (a failed one waits out its retry)."""
        handed = len(agent.specs)
        for _ in range(5):
            await self.round()
            if len(agent.specs) > handed:
                return agent.specs[-1]
        raise AssertionError("no task was handed to the node")

    async def round(self, advance_s: float = TICK) -> None:
        """One dispatch round, after `advance_s` (a tick: housekeeping runs too)."""
        self.clock.now += advance_s
        await self.dispatcher.step()

    def beat(self, node_id: str) -> None:
        agent = self.directory.agents[node_id]
        self.dispatcher.heartbeat(Heartbeat(node_id=node_id, running=list(agent.holding)))

    def end(self, spec: TaskSpec, ok: bool = True, failure: FailureClass | None = None) -> None:
        self.directory.agents[spec.node_id].holding.discard(
            Attempt(task_id=spec.task_id, attempt=spec.attempt))
        self.dispatcher.report(Started.about(spec, spec.node_id))
        self.dispatcher.report(Finished.about(spec, spec.node_id, ok=ok, failure_class=failure,
                                              error=None if ok else "exit 1"))

    async def task(self, job_id: str, index: int = 0) -> dict:
        return await self.store.tasks.find_one({"_id": f"{job_id}-{index:05d}"})

    async def job(self, job_id: str) -> dict:
        return await self.store.job(job_id)


@contextlib.asynccontextmanager
async def dispatch_farm(settings) -> AsyncIterator[Farm]:
    """A database of its own: the dispatcher reads every job and task in it."""
    name = f"dispatch_{uuid.uuid4().hex[:12]}"
    db = Database(settings.mongo_url.get_secret_value(), name)
    await db.ensure_indexes()
    yield Farm(db)
    await db.db.client.drop_database(name)
    await db.close()
