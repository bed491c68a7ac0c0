"""What the dispatcher holds in memory about the farm's nodes: their leases, and the nodes
it keeps out of scheduling for a while (quarantined) or for good (refused)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.farm.control.node_index import EPSILON, Shape, meets
from pipelines.farm.control.ports import NodeInfo
from pipelines.farm.control.task_view import NodeView


@dataclass
class Lease:
    attempt: int
    slots: float
    studio_id: str
    job_id: str
    layer: str | None = None  # for the job's counts (None: not known, the job is counted)


class Leases(dict[str, Lease]):
    """A node's leases by task id, their slots summed as they come and go: every round
    asks every node for its free slots."""

    def __init__(self) -> None:
        super().__init__()
        self.slots = 0.0

    def __setitem__(self, task_id: str, lease: Lease) -> None:
        self.pop(task_id)
        super().__setitem__(task_id, lease)
        self.slots += lease.slots

    def pop(self, task_id: str, default: Lease | None = None) -> Lease | None:  # type: ignore[override]
        lease = super().pop(task_id, None)
        if lease is None:
            return default
        self.slots = self.slots - lease.slots if self else 0.0  # no rounding left over
        return lease

    def __delitem__(self, task_id: str) -> None:
        if self.pop(task_id) is None:
            raise KeyError(task_id)


class EndRate:
    """The slots of the tasks a node ended lately: those of the current second and the one
    before (so between one and two seconds' worth), in constant memory however busy."""

    def __init__(self) -> None:
        self.second = 0
        self.this_second = self.last_second = 0.0

    def ended(self, now: float, slots: float) -> None:
        self._roll(now)
        self.this_second += slots

    def recent(self, now: float) -> float:
        self._roll(now)
        return self.this_second + self.last_second

    def _roll(self, now: float) -> None:
        second = int(now)
        if second != self.second:
            self.last_second = self.this_second if second == self.second + 1 else 0.0
            self.this_second, self.second = 0.0, second


@dataclass
class NodeState:
    info: NodeInfo
    last_seen: float
    running: Leases = field(default_factory=Leases)
    ends: EndRate = field(default_factory=EndRate)

    def allowance(self, most: float) -> float:
        """The most slots the node is ever leased: its own and `most` × them ahead."""
        return self.info.slots * (1.0 + most)

    def ahead(self, most: float, now: float) -> float:
        """Slots leased beyond the node's own (see Slots): about what it ended in the last
        second or two, up to `most` × its slots. A node ending many short tasks holds
        enough to start the next at once; one busy with long frames holds none, so a frame
        never waits behind another there while a node elsewhere frees up. A node holding
        nothing gets the whole allowance: a task bigger than the node can go to it (it runs
        there alone), and a first wave of short tasks meets no round trip."""
        if not self.running:
            return self.info.slots * most
        return min(self.info.slots * most, self.ends.recent(now))

    @property
    def slots_used(self) -> float:
        return self.running.slots


class NodeTable(dict[str, NodeState]):
    """The live farm nodes by id."""

    def __init__(self) -> None:
        super().__init__()
        self.quarantine: dict[str, float] = {}  # node id → until when it is ignored
        self.refused: dict[str, str] = {}  # node id → why (another protocol version)
        # node id → its controls (pipelines/farm/node_admin.py): locked, drain, labels
        self.controls: dict[str, dict[str, Any]] = {}
        self.drained: set[tuple[str, float]] = set()  # (node, drain's time) told idle

    def locked(self, node_id: str) -> bool:
        return bool(self.controls.get(node_id, {}).get("locked"))

    def tags(self, node_id: str) -> frozenset[str]:
        """What the node advertises, and the labels people gave it."""
        own = self[node_id].info.tags
        labels = self.controls.get(node_id, {}).get("labels")
        return own | frozenset(labels) if labels else own

    def drained_for(self, node_id: str) -> float | None:
        """The drain request (its time) the node was seen idle after, if any."""
        control = self.controls.get(node_id, {})
        drained = control.get("drain") and (node_id, control["updated_s"]) in self.drained
        return control["updated_s"] if drained else None

    def newly_drained(self) -> list[dict[str, Any]]:
        """Controls of nodes asked to drain that now run nothing, not told before."""
        idle = []
        for node_id, control in self.controls.items():
            key = (node_id, control["updated_s"])
            state = self.get(node_id)
            if control.get("drain") and key not in self.drained and \
                    (state is None or not state.running):
                self.drained.add(key)
                idle.append(control)
        return idle

    def welcome(self, node_id: str, now: float) -> bool:
        self.quarantine = {n: t for n, t in self.quarantine.items() if t > now}
        return node_id not in self.quarantine and node_id not in self.refused

    def views(self, most_ahead: float, now: float) -> list[NodeView]:
        """What the scheduler sees of the nodes with room, slots leased ahead included (see
        `NodeState.ahead`). A full node is left out: on a busy farm that is most of them,
        and the index of nodes is built every round."""
        views = []
        for node_id, state in self.items():
            if state.allowance(most_ahead) - state.slots_used <= EPSILON:
                continue  # full whatever it ended lately: the cheap test first
            slots = state.info.slots + state.ahead(most_ahead, now)
            if slots - state.slots_used > EPSILON and not self.locked(node_id):
                views.append(NodeView(node_id, slots, state.slots_used, state.info.gpus,
                                      state.info.memory_bytes, self.tags(node_id)))
        return views

    def sizes(self, most_ahead: float) -> dict[Shape, float]:
        """The most slots a node of each shape is offered (idle: its whole allowance),
        over every live node, full and locked ones too."""
        sizes: dict[Shape, float] = {}
        for node_id, state in self.items():
            shape = (state.info.gpus, state.info.memory_bytes, self.tags(node_id))
            sizes[shape] = max(sizes.get(shape, 0.0), state.allowance(most_ahead))
        return sizes

    def states(self, circuit: Any) -> dict[str, str]:
        """Each node's state for the farm's metrics (`circuit(node_id)`: its circuit)."""
        states = {n: "refused" for n in self.refused}
        for node_id in self:
            control = self.controls.get(node_id, {})
            states[node_id] = "draining" if control.get("drain") else \
                "locked" if control.get("locked") else \
                "circuit_open" if circuit(node_id) != "closed" else "open"
        return states

    def slots(self) -> tuple[float, float]:
        """(total, used) over the live nodes."""
        return (sum(s.info.slots for s in self.values()),
                sum(s.slots_used for s in self.values()))

    def leases(self) -> dict[str, tuple[str, int, str]]:
        """Task id → (node id, attempt, job id) of every task the farm runs."""
        return {t: (n, lease.attempt, lease.job_id)
                for n, s in self.items() for t, lease in s.running.items()}

    def running_by_studio(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for state in self.values():
            for lease in state.running.values():
                counts[lease.studio_id] = counts.get(lease.studio_id, 0) + 1
        return counts

    def another_takes(self, requirements: dict[str, Any], barred: set[str]) -> bool:
        """Whether a live node outside `barred`, and not locked (nor draining), could run a
        task of `requirements`. Not slots: a task wider than every node runs alone on the
        largest one."""
        gpus, memory, tags = (requirements["gpus"], requirements["memory_bytes"],
                              frozenset(requirements["tags"]))
        return any(node_id not in barred and not self.locked(node_id)
                   and meets((s.info.gpus, s.info.memory_bytes, self.tags(node_id)),
                             gpus, memory, tags)
                   for node_id, s in self.items())

    def bigger_memory(self, node_id: str, requirements: dict[str, Any]) -> int | None:
        """The memory of the smallest live node with more memory than `node_id` that meets
        the other requirements (GPUs, tags); None when there is none."""
        state = self.get(node_id)
        have = state.info.memory_bytes if state else 0
        return min((s.info.memory_bytes for s in self.values()
                    if s.info.memory_bytes > have and s.info.gpus >= requirements["gpus"]
                    and set(requirements["tags"]) <= s.info.tags), default=None)

    def docs(self, circuit: Any, now: float) -> list[dict[str, Any]]:
        """The nodes table, for people; refused nodes stay listed with the reason."""
        live = [{"_id": node_id, "name": s.info.name, "slots": s.info.slots,
                 "slots_used": s.slots_used, "running_tasks": sorted(s.running),
                 "gpus": s.info.gpus, "tags": sorted(s.info.tags),
                 "locked": self.locked(node_id), "drained_for": self.drained_for(node_id),
                 "circuit": circuit(node_id), "last_heartbeat_s": s.last_seen, "seen_s": now,
                 "refused": None} for node_id, s in self.items()]
        return live + [{"_id": node_id, "name": "", "slots": 0.0, "slots_used": 0.0,
                        "running_tasks": [], "gpus": 0, "tags": [], "circuit": "open",
                        "locked": self.locked(node_id),
                        "last_heartbeat_s": None, "seen_s": now, "refused": why}
                       for node_id, why in self.refused.items() if node_id not in self]


NODE_DOCS_PER_SAVE = 200  # node documents written at most each save
NODE_DOC_REFRESH_S = 10.0  # a node's document is rewritten this often though unchanged


def _material(doc: dict[str, Any]) -> tuple:
    """What of a node's document changes what people see, beyond the clock."""
    return tuple(v for k, v in sorted(doc.items()) if k not in ("seen_s", "last_heartbeat_s"))


class NodeDocs:
    """Which node documents to write: those that changed, or were not written for
    NODE_DOC_REFRESH_S, NODE_DOCS_PER_SAVE at a time; 10,000 nodes rewritten every second
    would swamp the database."""

    def __init__(self) -> None:
        self.saved: dict[str, tuple[tuple, float]] = {}  # id → (material, when)
        self.first = True

    def to_write(self, docs: list[dict[str, Any]], now: float
                 ) -> tuple[list[dict[str, Any]], list[str] | None]:
        """(documents to write, ids of nodes gone; None: drop every other document, as
        the first save does with what an earlier run left)."""
        saved = self.saved
        # Not written yet (all of them at first, a few at a time), changed, or old.
        changed = [d for d in docs if d["_id"] not in saved
                   or saved[d["_id"]][0] != _material(d)
                   or now - saved[d["_id"]][1] >= NODE_DOC_REFRESH_S][:NODE_DOCS_PER_SAVE]
        if self.first:
            self.first = False
            return self._saved(changed, now), None
        gone = list(saved.keys() - {d["_id"] for d in docs})
        for node_id in gone:
            del saved[node_id]
        return self._saved(changed, now), gone

    def _saved(self, docs: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        for doc in docs:
            self.saved[doc["_id"]] = (_material(doc), now)
        return docs
