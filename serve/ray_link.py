"""ClusterLink over Ray: the metrics hub actor, which also proves the cluster answers."""

from __future__ import annotations

import asyncio
import logging

import ray
from ray.exceptions import RayError

from actors.broadcaster import RayEventPublisher, RayEventSource
from actors.metrics_hub import metrics_hub
from pipelines.errors import DependencyUnavailable
from pipelines.telemetry import Family

log = logging.getLogger("farm.cluster")


class RayLink:
    def __init__(self) -> None:
        self._hub = None
        self._dispatcher = None
        self._publisher = RayEventPublisher()
        self._source = RayEventSource()

    @property
    def hub(self):
        if self._hub is None:
            self._hub = metrics_hub()
        return self._hub

    async def report_metrics(self, source_id: str, families: list[Family]) -> None:
        await self.hub.report.remote(source_id, families)

    async def render_metrics(self) -> str:
        try:
            return await self.hub.render.remote()
        except RayError as exc:
            self._hub = None
            raise DependencyUnavailable("metrics hub unavailable") from exc

    async def _dispatcher_handle(self):
        from actors.dispatcher import NAME, NAMESPACE

        if self._dispatcher is None:
            self._dispatcher = await asyncio.to_thread(ray.get_actor, NAME, NAMESPACE)
        return self._dispatcher

    async def wake_dispatcher(self, job_id: str | None = None) -> None:
        """Fire and forget: the dispatcher also looks for new work every second. Work
        submitted while it is away waits in MongoDB; `/ready` names it as down meanwhile."""
        try:
            (await self._dispatcher_handle()).wake.remote(job_id)
        except (RayError, ValueError):
            self._dispatcher = None
            log.warning("farm dispatcher not running: new work waits until it is back")

    async def ping_dispatcher(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for((await self._dispatcher_handle()).ping.remote(), timeout_s)
        except ValueError:
            self._dispatcher = None
            raise DependencyUnavailable("the farm dispatcher is not running") from None
        except (RayError, TimeoutError) as exc:
            self._dispatcher = None
            raise DependencyUnavailable("the farm dispatcher does not answer") from exc

    async def ping(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self.hub.ping.remote(), timeout_s)
        except (RayError, TimeoutError) as exc:
            self._hub = None
            raise DependencyUnavailable("ray cluster does not answer") from exc

    def event_publisher(self) -> RayEventPublisher:
        return self._publisher

    def event_source(self) -> RayEventSource:
        return self._source
