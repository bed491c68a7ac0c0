"""What reaches the dispatcher's loop besides the nodes' reports, and what it hands them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pipelines.farm.protocol import Finished, Heartbeat, Progressed, Started, TaskSpec


@dataclass(frozen=True)
class Leaving:
    """A node leaves on purpose (`farm join` stopping)."""

    node_id: str


@dataclass(frozen=True)
class Written:
    """Set once the reports queued before it are written (see `report_many`)."""

    future: asyncio.Future


Message = Started | Progressed | Finished | Heartbeat | Leaving | Written


def task_spec(task: dict, attempt: int, node_id: str, node_slots: float) -> TaskSpec:
    """One attempt of a leased task, as its node receives it."""
    return TaskSpec(task_id=task["_id"], job_id=task["job_id"], studio_id=task["studio_id"],
                    kind=task["kind"], attempt=attempt, frames=task["frames"],
                    payload=task["payload"], timeout_s=task["timeout_s"], node_id=node_id,
                    slots=task["requirements"]["slots"], node_slots=node_slots,
                    request_id=task.get("request_id"))
