"""Taking farm nodes in and out of service, and labelling them: what operators do to nodes.

A node's controls are one document in `node_controls`, written here only: `locked` (no new
task is leased to it; running ones finish), `drain` (locked, and reported once idle: the
dispatcher emits `node.drained`), and `labels` (tags people add to those the node
advertises, which jobs may require). The dispatcher reads the documents changed since its
last read once a tick, so a change holds within a second.

Nodes are shared by every studio on the farm. Who may change them: a TD, supervisor or
admin (`Action.FARM_NODE_MANAGE`), of a studio listed in `FARM_NODE_MANAGERS` when that
setting names any (a farm shared by studios that should not steer each other's capacity).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from pymongo import ASCENDING, IndexModel

from pipelines.clock import iso
from pipelines.db import declare_indexes
from pipelines.errors import Forbidden, InvalidInput, NotFound
from pipelines.events.log import EventLog
from pipelines.events.rooms import studio_room
from pipelines.farm.models import TAG_PATTERN
from pipelines.farm.store import NODE_CONTROLS, FarmStore
from pipelines.identity.audit import AuditLog
from pipelines.identity.models import Principal
from pipelines.identity.records import AUDIT, STUDIOS

declare_indexes(NODE_CONTROLS, [IndexModel([("updated_s", ASCENDING)], name="changed")])

LABEL = re.compile(TAG_PATTERN)  # what a job may require
MAX_LABELS = 32
RECENT_FAILURES_S = 3600.0


class NodeNotFound(NotFound):
    code = "node_not_found"


def node_state(doc: dict[str, Any], control: dict[str, Any]) -> str:
    """What an operator reads first: refused, drained, draining, locked or open."""
    if doc.get("refused"):
        return "refused"
    if control.get("drain"):  # drained once the dispatcher saw it idle since the drain
        drained = doc.get("drained_for") is not None and \
            doc.get("drained_for") == control.get("updated_s")
        return "drained" if drained else "draining"
    return "locked" if control.get("locked") else "open"


class NodeAdmin:
    def __init__(self, db, events: EventLog, managers: list[str],
                 clock: Callable[[], float] = time.time):
        self.store = FarmStore(db)
        self.controls = db[NODE_CONTROLS]
        self.studios = db[STUDIOS]
        self.events = events
        self.managers = managers  # studio slugs; empty: every studio
        self.audit = AuditLog(db[AUDIT], clock)
        self.clock = clock

    async def all(self, principal: Principal) -> list[dict[str, Any]]:
        """Every node; other studios' task ids are counted, never shown."""
        docs = await self.store.nodes.find({}).sort("_id", 1).to_list()
        controls = {c["_id"]: c for c in await self.controls.find({}).to_list()}
        mine = await self.store.active_task_ids(principal.studio_id)
        failures = await self.store.recent_failures(self.clock() - RECENT_FAILURES_S)
        return [self._out(d, controls.get(d["_id"], {}), mine, failures.get(d["_id"], {}))
                for d in docs]

    async def get(self, principal: Principal, node_id: str) -> dict[str, Any]:
        doc = await self._node(node_id)
        control = await self.controls.find_one({"_id": node_id}) or {}
        mine = await self.store.active_task_ids(principal.studio_id)
        failures = await self.store.recent_failures(self.clock() - RECENT_FAILURES_S,
                                                    node_id)
        return self._out(doc, control, mine, failures.get(node_id, {}))

    async def set_mode(self, principal: Principal, node_id: str, mode: str,
                       reason: str | None) -> dict[str, Any]:
        """`lock`, `drain` or `unlock`."""
        await self._may_manage(principal)
        await self._node(node_id)
        fields = {"lock": {"locked": True, "drain": False},
                  "drain": {"locked": True, "drain": True},
                  "unlock": {"locked": False, "drain": False}}[mode]
        await self._write(principal, node_id, fields | {"reason": reason})
        action = {"lock": "node.locked", "drain": "node.draining",
                  "unlock": "node.unlocked"}[mode]
        await self._tell(principal, action, node_id, {"reason": reason} if reason else {})
        return await self.get(principal, node_id)

    async def set_labels(self, principal: Principal, node_id: str,
                         labels: list[str]) -> dict[str, Any]:
        await self._may_manage(principal)
        await self._node(node_id)
        wrong = [label for label in labels if not LABEL.fullmatch(label)]
        if wrong or len(set(labels)) > MAX_LABELS:
            raise InvalidInput(
                f"labels are tags as jobs require them (1-40 of a-z, 0-9, '_', '.', '-', "
                f"starting and ending with a letter or digit), at most {MAX_LABELS}",
                code="invalid_label",
                details=[{"loc": ["body", "labels"], "msg": f"not a label: {w!r}",
                          "type": "invalid_label"} for w in wrong[:5]])
        before = (await self.controls.find_one({"_id": node_id}) or {}).get("labels", [])
        after = sorted(set(labels))
        await self._write(principal, node_id, {"labels": after})
        await self._tell(principal, "node.labels_changed", node_id,
                         {"from": before, "to": after})
        return await self.get(principal, node_id)

    async def _write(self, principal: Principal, node_id: str, fields: dict[str, Any]) -> None:
        now = self.clock()
        await self.controls.update_one(
            {"_id": node_id},
            {"$set": fields | {"updated_s": now, "studio_id": principal.studio_id,
                               "by": principal.user_id},
             "$setOnInsert": {"created_s": now}}, upsert=True)

    async def _tell(self, principal: Principal, action: str, node_id: str,
                    details: dict[str, Any]) -> None:
        await self.events.append(principal.studio_id, action, studio_room(principal.studio_id),
                                 {"node_id": node_id, "by": principal.user_id, **details})
        await self.audit.record(principal.studio_id, action, actor=principal.actor(),
                                target={"type": "node", "id": node_id}, details=details)

    async def _node(self, node_id: str) -> dict[str, Any]:
        doc = await self.store.nodes.find_one({"_id": node_id})
        if doc is None:
            raise NodeNotFound("no such node (GET /api/v1/farm/nodes lists them)")
        return doc

    async def _may_manage(self, principal: Principal) -> None:
        if not self.managers:
            return
        studio = await self.studios.find_one({"_id": principal.studio_id}, {"slug": 1})
        if studio is None or studio["slug"] not in self.managers:
            raise Forbidden("this farm's nodes are managed by other studios",
                            code="not_a_node_manager")

    @staticmethod
    def _out(doc: dict[str, Any], control: dict[str, Any], mine: set[str],
             failures: dict[str, int]) -> dict[str, Any]:
        return {"node_id": doc["_id"], "name": doc.get("name", ""), "slots": doc["slots"],
                "slots_used": doc["slots_used"], "gpus": doc.get("gpus", 0),
                "tags": doc.get("tags", []), "labels": control.get("labels", []),
                "state": node_state(doc, control), "reason": control.get("reason"),
                "circuit": doc["circuit"], "running_tasks": len(doc["running_tasks"]),
                "my_tasks": [t for t in doc["running_tasks"] if t in mine],
                "recent_failures": failures,
                "last_heartbeat_at": iso(doc.get("last_heartbeat_s")),
                "refused": doc.get("refused")}
