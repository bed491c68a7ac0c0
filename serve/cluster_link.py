"""What the HTTP layer needs from the cluster, with an in-process stand-in for Ray-less runs."""

from __future__ import annotations

from typing import Protocol

from pipelines.events.broadcast import Broadcaster
from pipelines.events.feed import EventSource
from pipelines.events.log import EventPublisher
from pipelines.telemetry import Family, MetricsAggregator


class ClusterLink(Protocol):
    async def report_metrics(self, source_id: str, families: list[Family]) -> None: ...

    async def render_metrics(self) -> str: ...

    async def ping(self, timeout_s: float) -> None: ...

    async def wake_dispatcher(self, job_id: str | None = None) -> None: ...

    async def ping_dispatcher(self, timeout_s: float) -> None: ...

    def event_publisher(self) -> EventPublisher: ...

    def event_source(self) -> EventSource: ...


class LocalLink:
    """One process, no cluster: metrics are summed in memory, the 'cluster' is always up."""

    def __init__(self) -> None:
        self.aggregator = MetricsAggregator()
        self.broadcaster = Broadcaster()  # live events within this one process

    async def report_metrics(self, source_id: str, families: list[Family]) -> None:
        self.aggregator.report(source_id, families)

    async def render_metrics(self) -> str:
        return self.aggregator.render()

    async def ping(self, timeout_s: float) -> None:
        return None

    async def wake_dispatcher(self, job_id: str | None = None) -> None:
        return None  # no farm without a cluster

    async def ping_dispatcher(self, timeout_s: float) -> None:
        return None  # nothing to dispatch in one process

    def event_publisher(self) -> EventPublisher:
        return self.broadcaster

    def event_source(self) -> EventSource:
        return self.broadcaster
