"""What people set on nodes through the API (pipelines/farm/node_admin.py), read by the
dispatcher once a tick: locks, drains and labels changed since its last read. A node asked
to drain is told idle once, to the studio that asked."""

from __future__ import annotations

import logging

from pipelines.events.log import EventLog
from pipelines.events.rooms import studio_room
from pipelines.farm.control.node_state import NodeTable
from pipelines.farm.store import FarmStore

log = logging.getLogger("farm.dispatcher")


class NodeControls:
    def __init__(self, store: FarmStore, events: EventLog, nodes: NodeTable):
        self.store, self.events, self.nodes = store, events, nodes
        self.read_at = 0.0

    async def refresh(self) -> None:
        for control in await self.store.node_controls(self.read_at):
            self.nodes.controls[control["_id"]] = control
            self.read_at = max(self.read_at, control["updated_s"])
        for control in self.nodes.newly_drained():
            log.info("node drained", extra={"node_id": control["_id"]})
            await self.events.append(control["studio_id"], "node.drained",
                                     studio_room(control["studio_id"]),
                                     {"node_id": control["_id"], "by": control.get("by")})
