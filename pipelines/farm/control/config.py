"""The dispatcher's knobs, read from the one Settings object, and its process's garbage
collection."""

from __future__ import annotations

import gc
from dataclasses import dataclass

from config.settings import Settings


@dataclass(frozen=True)
class DispatchConfig:
    tick_s: float = 1.0
    coalesce_s: float = 0.005
    dispatch_ahead: float = 1.0        # extra leases per node, as a fraction of its slots
    lease_s: float = 30.0              # a written lease no dispatcher holds ends after this
    node_silence_s: float = 15.0       # a node not heard from for this long is lost
    circuit_threshold: int = 3
    circuit_cooldown_s: float = 60.0
    bad_node_threshold: int = 3
    retry_initial_s: float = 2.0
    retry_max_s: float = 300.0
    # Leases written in one round at most: a round's writes, and so its length, stay
    # bounded while an empty farm of thousands of slots fills (docs/farm.md, "At scale").
    leases_per_round: int = 2000
    # Fewer when a round's reports and leases take longer than this (see pacing.py); the
    # rest of a round (reading jobs, counting, the node table) has budgets of its own.
    lease_work_s: float = 0.25

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchConfig:
        return cls(lease_s=settings.task_lease_s, node_silence_s=settings.node_silence_s,
                   circuit_threshold=settings.circuit_threshold,
                   circuit_cooldown_s=settings.circuit_cooldown_s,
                   bad_node_threshold=settings.bad_node_threshold,
                   retry_initial_s=settings.retry_initial_s,
                   retry_max_s=settings.retry_max_s,
                   dispatch_ahead=settings.dispatch_ahead)


# The dispatcher keeps hundreds of thousands of long-lived objects (the ready queue, the
# leases, the nodes). Python walks all of them in a full collection whenever a quarter more
# have survived since the last one, which a busy farm's churn of task documents reaches
# every second or so: pauses of 0.1-0.35 s, a fifth of the dispatcher's time at 10,000
# nodes (docs/farm.md, "At scale"). Young objects are still collected as often as before;
# a full collection waits for this many collections of the middle generation (Python: 10).
FULL_COLLECTION_AFTER = 1000


def collect_garbage_rarely() -> None:
    """For the dispatcher's own process (its actor), not for a process that shares it."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)
