"""ClusterLink over Ray: the metrics hub actor, which also proves the cluster answers."""

from __future__ import annotations

import asyncio

from ray.exceptions import RayError

from actors.metrics_hub import metrics_hub
from pipelines.errors import DependencyUnavailable
from pipelines.telemetry import Family


class RayLink:
    def __init__(self) -> None:
        self._hub = None

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

    async def ping(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self.hub.ping.remote(), timeout_s)
        except (RayError, TimeoutError) as exc:
            self._hub = None
            raise DependencyUnavailable("ray cluster does not answer") from exc
