"""The farm dispatcher: one detached, named, restartable actor over pipelines.farm.Dispatcher.

If it dies, Ray restarts it; the new one rebuilds from MongoDB and the node agents
(`Dispatcher._recover`). Its loop starts on the first call of any method, which the node
agents' heartbeats provide within seconds of a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import ray
from ray._common.constants import HEAD_NODE_RESOURCE_NAME

from actors.broadcaster import RayEventPublisher
from actors.metrics_hub import metrics_hub
from actors.node_agent import start_agent
from config.settings import Settings
from pipelines.db import Database
from pipelines.events.log import EventLog
from pipelines.farm.control.config import DispatchConfig, collect_garbage_rarely
from pipelines.farm.control.dispatcher import Dispatcher
from pipelines.farm.control.ports import FARM_RESOURCE, TAG_LABEL_PREFIX, NodeInfo
from pipelines.farm.protocol import (
    Attempt,
    ProtocolMismatch,
    TaskSpec,
    read_attempts,
    read_heartbeat,
    read_reports,
)
from pipelines.farm.publish.preview import PreviewPublisher
from pipelines.farm.publish.render import ProgressivePublisher, RenderPublisher
from pipelines.farm.store import FarmStore
from pipelines.farm.submit.adoption import PreviewAdopter
from pipelines.farm.submit.jobs import JobService
from pipelines.logs import configure_logging
from pipelines.storage import ObjectStore, storage_config

NAME = "farm-dispatcher"
NAMESPACE = "studio-farm"
log = logging.getLogger("farm.dispatcher")


class RayNodeDirectory:
    """Farm nodes are the live Ray nodes with the `farm` resource."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.agents: dict[str, Any] = {}

    async def discover(self) -> list[NodeInfo]:
        nodes = await asyncio.to_thread(ray.nodes)
        return [NodeInfo(n["NodeID"], float(n["Resources"][FARM_RESOURCE]),
                         int(n["Resources"].get("GPU", 0)), int(n["Resources"].get("memory", 0)),
                         frozenset(key.removeprefix(TAG_LABEL_PREFIX)
                                   for key in (n.get("Labels") or {})
                                   if key.startswith(TAG_LABEL_PREFIX)),
                         n.get("NodeName") or n.get("NodeManagerAddress", ""))
                for n in nodes if n.get("Alive") and n.get("Resources", {}).get(FARM_RESOURCE)]

    def agent(self, node_id: str):
        if node_id not in self.agents:
            self.agents[node_id] = start_agent(node_id, self.settings, NAME)
        return _AgentCalls(self.agents[node_id])

    def forget(self, node_id: str) -> None:
        self.agents.pop(node_id, None)


class _AgentCalls:
    def __init__(self, handle):
        self.handle = handle

    async def run_many(self, specs: list[TaskSpec]) -> None:
        await self.handle.run_many.remote([spec.wire() for spec in specs])

    async def cancel(self, task_id: str, attempt: int) -> None:
        with contextlib.suppress(ray.exceptions.RayError):  # a node gone: so is its task
            await self.handle.cancel.remote(task_id, attempt)

    async def running(self) -> list[Attempt]:
        return read_attempts(await asyncio.wait_for(self.handle.running.remote(), 10))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=1000)
class DispatcherActor:
    def __init__(self, settings: Settings, config: DispatchConfig | None = None):
        configure_logging(settings.log_level)
        collect_garbage_rarely()  # this actor's process is the dispatcher's alone
        self.settings = settings
        self.config = config or DispatchConfig.from_settings(settings)
        self.dispatcher: Dispatcher | None = None
        self.loop_task: asyncio.Task | None = None
        self.metrics_task: asyncio.Task | None = None

    def _ensure_started(self) -> Dispatcher:
        if self.dispatcher is None:
            db = Database(self.settings.mongo_url.get_secret_value(), self.settings.mongo_db)
            events = EventLog(db, publisher=RayEventPublisher())  # live to sockets
            jobs = JobService(db, events, wake=self._wake_from_within)
            self.dispatcher = Dispatcher(
                FarmStore(db), RayNodeDirectory(self.settings), events, self.config,
                hooks=self._hooks(db, events),
                adopt=PreviewAdopter(db, jobs))
        if self.loop_task is None or self.loop_task.done():
            self.loop_task = asyncio.get_running_loop().create_task(
                self.dispatcher.run_forever())
        if self.metrics_task is None or self.metrics_task.done():
            self.metrics_task = asyncio.get_running_loop().create_task(
                self._report_metrics_forever(self.dispatcher))
        return self.dispatcher

    @staticmethod
    async def _report_metrics_forever(dispatcher: Dispatcher, every_s: float = 2.0) -> None:
        """The farm's metrics to the hub, which serves them on /metrics beside the API's
        (one source: a restarted dispatcher's snapshot replaces the last one)."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await metrics_hub().report.remote("farm-dispatcher",
                                                  dispatcher.metrics.snapshot())
            except Exception as exc:  # noqa: BLE001 - metrics must never stop the farm
                log.debug("metrics report failed: %s", type(exc).__name__)

    def _hooks(self, db, events: EventLog) -> dict:
        store = ObjectStore(storage_config(self.settings))
        return {"preview": PreviewPublisher(db, events),
                "assemble": RenderPublisher(db, events, store),
                "progressive": ProgressivePublisher(db, events, store,
                                                    self.settings.download_url_ttl_s)}

    async def start(self) -> bool:
        self._ensure_started()
        return True

    async def wake(self, job_id: str | None = None) -> None:
        self._ensure_started().wake(job_id)

    async def _wake_from_within(self, job_id: str | None = None) -> None:
        """A preview job adopted inside the dispatcher: its tasks are read next round."""
        if self.dispatcher is not None:
            self.dispatcher.wake(job_id)

    async def report_many(self, reports: list[dict[str, Any]]) -> None:
        await self._ensure_started().report_many(read_reports(reports))

    async def heartbeat(self, beat: dict[str, Any]) -> None:
        dispatcher = self._ensure_started()
        try:
            dispatcher.heartbeat(read_heartbeat(beat))
        except ProtocolMismatch as exc:
            node_id = beat.get("node_id") if isinstance(beat, dict) else None
            if isinstance(node_id, str):
                dispatcher.refuse(node_id, exc)
            raise

    async def leave(self, node_id: str) -> None:
        self._ensure_started().leave(node_id)

    async def ping(self) -> bool:
        """Readiness: answers once the loop runs (and starts it after a restart)."""
        self._ensure_started()
        return True


def ensure_dispatcher(settings: Settings, config: DispatchConfig | None = None):
    handle = DispatcherActor.options(
        name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        # On the head, which lives as long as the cluster; render nodes come and go.
        resources={HEAD_NODE_RESOURCE_NAME: 0.001},
    ).remote(settings, config)
    ray.get(handle.start.remote())
    return handle


def stop_dispatcher() -> None:
    with contextlib.suppress(ValueError):  # not running
        ray.kill(ray.get_actor(NAME, namespace=NAMESPACE), no_restart=True)
