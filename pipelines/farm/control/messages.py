"""What reaches the dispatcher's loop besides the nodes' reports."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pipelines.farm.protocol import Finished, Heartbeat, Progressed, Started


@dataclass(frozen=True)
class Leaving:
    """A node leaves on purpose (`farm join` stopping)."""

    node_id: str


@dataclass(frozen=True)
class Written:
    """Set once the reports queued before it are written (see `report_many`)."""

    future: asyncio.Future


Message = Started | Progressed | Finished | Heartbeat | Leaving | Written
