"""What the dispatcher needs from the cluster and from node agents (Ray in production)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pipelines.farm.protocol import Attempt, TaskSpec

# What marks a cluster node as a farm node: a resource whose amount is its slots, and one
# label per tag (`farm-tag/<tag>`), as `farm up` and `farm join` start them.
FARM_RESOURCE = "farm"
TAG_LABEL_PREFIX = "farm-tag/"


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    slots: float
    gpus: int = 0
    memory_bytes: int = 0
    tags: frozenset[str] = field(default_factory=frozenset)
    name: str = ""  # what the operator called it (`farm join --name`), for people


class AgentPort(Protocol):
    """One node's agent. Raises `ProtocolMismatch` when it speaks another version."""

    async def run_many(self, specs: list[TaskSpec]) -> None: ...

    async def cancel(self, task_id: str, attempt: int) -> None: ...

    async def running(self) -> list[Attempt]: ...


class NodeDirectory(Protocol):
    async def discover(self) -> list[NodeInfo]: ...

    def agent(self, node_id: str) -> AgentPort: ...

    def forget(self, node_id: str) -> None: ...
