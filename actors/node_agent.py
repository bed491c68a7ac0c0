"""One NodeAgent per farm node, pinned to it: a thin Ray shell over pipelines.farm.node.agent."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from config.settings import Settings
from pipelines.farm.node.agent import NodeAgent, Report
from pipelines.farm.node.runners import run_command
from pipelines.farm.node.scratch import Scratch
from pipelines.farm.protocol import Heartbeat, read_specs
from pipelines.logs import configure_logging
from pipelines.media.reaper import guard_tool_groups
from pipelines.storage import ObjectStore, storage_config

NAMESPACE = "studio-farm"


def agent_name(node_id: str) -> str:
    return f"farm-agent-{node_id}"


class DispatcherReporter:
    """Reports go to whichever dispatcher currently holds the name (it may restart), as
    the protocol's wire dicts (the dispatcher may run another version of this code)."""

    def __init__(self, dispatcher_name: str):
        self.dispatcher_name = dispatcher_name
        self._cached = None

    async def _call(self, method: str, *args: Any) -> None:
        try:
            if self._cached is None:
                self._cached = ray.get_actor(self.dispatcher_name, namespace=NAMESPACE)
            await getattr(self._cached, method).remote(*args)
        except Exception:
            self._cached = None  # look the name up again next time
            raise

    async def report_many(self, reports: list[Report]) -> None:
        await self._call("report_many", [report.wire() for report in reports])

    async def heartbeat(self, beat: Heartbeat) -> None:
        await self._call("heartbeat", beat.wire())


@ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=1000)
class NodeAgentActor:
    def __init__(self, node_id: str, settings: Settings, dispatcher_name: str):
        configure_logging(settings.log_level)
        guard_tool_groups()  # tasks die with this agent, so no lost agent's task runs twice
        self.scratch = Scratch(Path(tempfile.gettempdir()) / "farm-agent", node_id)
        work_dir = self.scratch.take()
        store = ObjectStore(storage_config(settings))
        runners = {"command": run_command, **_optional_runners(settings, store, work_dir)}
        self.agent = NodeAgent(node_id, DispatcherReporter(dispatcher_name), store, work_dir,
                               runners)
        self._heartbeat: asyncio.Task | None = None

    async def run_many(self, specs: list[dict[str, Any]]) -> None:
        self._ensure_heartbeat()
        await self.agent.run_many(read_specs(specs))  # another version: ProtocolMismatch

    async def cancel(self, task_id: str, attempt: int) -> None:
        await self.agent.cancel(task_id, attempt)

    async def running(self) -> list[dict[str, Any]]:
        self._ensure_heartbeat()
        return [attempt.wire() for attempt in self.agent.running()]

    async def stop_all(self) -> int:
        return await self.agent.stop_all()

    async def ping(self) -> str:
        return self.agent.node_id

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(
                self.agent.heartbeat_forever())


def _optional_runners(settings: Settings, store: ObjectStore, work_dir: Path) -> dict:
    from pipelines.farm.node.cache import InputCache
    from pipelines.farm.node.encode import EncodeRunner
    from pipelines.farm.node.movie import AssembleRunner, ProgressiveRunner
    from pipelines.farm.node.preview import PreviewRunner
    from pipelines.farm.node.render import RenderRunner
    from pipelines.media.previews import PreviewLimits
    from pipelines.render.blender import BlenderRenderer
    from pipelines.render.command import CommandRenderer

    # One per node, shared by every runner.
    cache = InputCache(store, work_dir / "cache", settings.node_cache_bytes)
    limits = PreviewLimits(ffmpeg=settings.ffmpeg, ffprobe=settings.ffprobe)
    renderers = {"blender": BlenderRenderer(settings.blender), "command": CommandRenderer()}
    return {"preview": PreviewRunner(settings, cache),
            "render": RenderRunner(store, cache, renderers),
            "assemble": AssembleRunner(store, limits),
            "progressive": ProgressiveRunner(store, limits),
            "encode": EncodeRunner(cache, limits)}


def stop_agents(timeout_s: float = 15.0) -> None:
    """Before a cluster goes down: every node's agent stops its tasks' processes."""
    agents = [ray.get_actor(a["name"], namespace=NAMESPACE)
              for a in ray.util.list_named_actors(all_namespaces=True)
              if a["namespace"] == NAMESPACE and a["name"].startswith(agent_name(""))]
    with contextlib.suppress(ray.exceptions.RayError, ValueError):
        ray.get([agent.stop_all.remote() for agent in agents], timeout=timeout_s)


def start_agent(node_id: str, settings: Settings, dispatcher_name: str):
    return NodeAgentActor.options(
        name=agent_name(node_id), namespace=NAMESPACE, lifetime="detached",
        get_if_exists=True,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(node_id, settings, dispatcher_name)
