"""What the dispatcher holds in memory about each farm node: its leases."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.farm.ports import NodeInfo


@dataclass(frozen=True)
class Lease:
    attempt: int
    slots: float
    studio_id: str
    job_id: str


@dataclass
class NodeState:
    info: NodeInfo
    last_seen: float
    running: dict[str, Lease] = field(default_factory=dict)  # by task id
