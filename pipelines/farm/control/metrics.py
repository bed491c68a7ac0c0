"""The farm's metrics, kept by the dispatcher in a registry of its own and reported to the
metrics hub (pipelines/telemetry.py), which serves them on /metrics beside the API's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipelines.telemetry import Family, snapshot

_ROUND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Job counts → the `state` label: what waits for a slot, and what holds one.
_STATES = {"ready": "queued", "leased": "running", "running": "running", "waiting": "waiting"}


class FarmMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tasks = Gauge("farm_tasks", "Tasks of schedulable jobs by state (queued, running, "
                           "waiting), studio and priority.", ["state", "studio", "priority"],
                           registry=r)
        self.nodes = Gauge("farm_nodes", "Farm nodes by state (open, locked, draining, "
                           "circuit_open, refused).", ["state"], registry=r)
        self.slots = Gauge("farm_slots", "Farm slots, total and used.", ["kind"], registry=r)
        self.outcomes = Counter("farm_task_outcomes", "Ended task attempts by outcome and "
                                "failure class.", ["outcome", "failure_class"], registry=r)
        self.retries = Counter("farm_task_retries", "Failed attempts queued again.",
                               registry=r)
        self.rounds = Histogram("farm_dispatch_round_seconds", "Dispatch round duration.",
                                buckets=_ROUND_BUCKETS, registry=r)
        self.lease_expiries = Counter("farm_lease_expiries", "Leases that ran out with no "
                                      "node holding the task (requeued).", registry=r)
        self.nodes_lost = Counter("farm_nodes_lost", "Nodes lost (died, silent, left).",
                                  registry=r)

    def ended(self, ok: bool, failure_class: str | None) -> None:
        self.outcomes.labels("succeeded" if ok else "failed",
                             "" if ok else failure_class or "crash").inc()

    def observe_farm(self, jobs: Iterable[dict[str, Any]], nodes: dict[str, str],
                     slots_total: float, slots_used: float) -> None:
        """Once a tick: task counts of the schedulable jobs, and node states by id."""
        self.tasks.clear()
        for job in jobs:
            for state, count in (job.get("counts") or {}).items():
                if state in _STATES and count:
                    self.tasks.labels(_STATES[state], job["studio_id"],
                                      str(job.get("priority", 0))).inc(count)
        self.nodes.clear()
        for state in nodes.values():
            self.nodes.labels(state).inc()
        self.slots.labels("total").set(slots_total)
        self.slots.labels("used").set(slots_used)

    def snapshot(self) -> list[Family]:
        return snapshot(self.registry)
