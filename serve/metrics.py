"""Metrics of one API process (an Api replica or the upload gateway): HTTP requests, live
sockets and the events they were sent, upload bytes. Each process keeps its own registry and
reports snapshots of it; the metrics hub sums them (pipelines/telemetry.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import Scope

from pipelines.telemetry import Family, snapshot

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class HttpMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "farm_http_requests", "HTTP requests by method, route template and status.",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "farm_http_request_duration_seconds", "HTTP request latency by route template.",
            ["method", "route"], buckets=_BUCKETS, registry=self.registry,
        )
        self.in_flight = Gauge(
            "farm_http_requests_in_flight", "HTTP requests being served.", registry=self.registry,
        )
        self.sockets = Gauge(
            "farm_websocket_connections", "Live event sockets open.", registry=self.registry,
        )
        self.events_sent = Counter(
            "farm_websocket_events_sent", "Events sent to sockets (live and replayed).",
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "farm_upload_bytes", "File bytes received by uploads that were stored.",
            registry=self.registry,
        )

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        # Templates, never raw paths: ids in paths would explode the label space.
        template = getattr(route, "path", None) or "unmatched"
        self.requests.labels(scope["method"], template, str(status)).inc()
        self.latency.labels(scope["method"], template).observe(seconds)

    def snapshot(self) -> list[Family]:
        return snapshot(self.registry)
