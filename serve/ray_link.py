"""ClusterLink over Ray: the metrics hub actor, which also proves the cluster answers."""

from __future__ import annotations

import asyncio

import ray
from ray.exceptions import RayError

from actors.broadcaster import RayEventPublisher, RayEventSource
from actors.metrics_hub import metrics_hub
from pipelines.errors import DependencyUnavailable
from pipelines.telemetry import Family


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

    async def wake_dispatcher(self) -> None:
        """Fire and forget: the dispatcher also looks for new work every second."""
        from actors.dispatcher import NAME, NAMESPACE

        try:
            if self._dispatcher is None:
                self._dispatcher = await asyncio.to_thread(ray.get_actor, NAME, NAMESPACE)
            self._dispatcher.wake.remote()
        except (RayError, ValueError):
            self._dispatcher = None

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
