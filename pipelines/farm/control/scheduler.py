"""Which ready task goes to which node: priority, then fairness across studios, then age."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class NodeView:
    node_id: str
    slots_total: float
    slots_used: float = 0.0
    gpus: int = 0
    memory_bytes: int = 0
    tags: frozenset[str] = frozenset()

    @property
    def slots_free(self) -> float:
        return self.slots_total - self.slots_used


@dataclass(frozen=True)
class TaskView:
    task_id: str
    job_id: str
    studio_id: str
    kind: str
    priority: int
    job_created_s: float
    index: int
    slots: float = 1.0
    gpus: int = 0
    memory_bytes: int = 0
    tags: frozenset[str] = frozenset()
    bad_nodes: frozenset[str] = field(default_factory=frozenset)


def task_view(task: dict, job: dict) -> TaskView:
    """A ready task as the scheduler sees it, from its document and its job's."""
    req = task["requirements"]
    return TaskView(task["_id"], task["job_id"], task["studio_id"], task["kind"],
                    job["priority"], job["created_s"], task["index"], req["slots"],
                    req["gpus"], req["memory_bytes"], frozenset(req["tags"]),
                    frozenset(job.get("bad_nodes", [])))


def fits(task: TaskView, node: NodeView) -> bool:
    return (node.slots_free + 1e-9 >= task.slots and node.gpus >= task.gpus
            and (not task.memory_bytes or node.memory_bytes >= task.memory_bytes)
            and task.tags <= node.tags and node.node_id not in task.bad_nodes)


class Scheduler:
    """Plans assignments for one round. `allowed(node_id, kind)` is the circuit check."""

    def __init__(self, allowed: Callable[[str, str], bool] = lambda node, kind: True,
                 placed: Callable[[str, str], None] = lambda node, kind: None):
        self.allowed = allowed
        self.placed = placed  # told at once, so a half-open node gets one trial per round

    def plan(self, tasks: list[TaskView], nodes: list[NodeView],
             running_by_studio: dict[str, int]) -> list[tuple[TaskView, str]]:
        running = defaultdict(int, running_by_studio)
        plan: list[tuple[TaskView, str]] = []
        for priority in sorted({t.priority for t in tasks}, reverse=True):
            queues: dict[str, deque[TaskView]] = defaultdict(deque)
            for task in sorted((t for t in tasks if t.priority == priority),
                               key=lambda t: (t.job_created_s, t.job_id, t.index)):
                queues[task.studio_id].append(task)
            while queues and any(n.slots_free > 0 for n in nodes):
                studio = min(queues, key=lambda s: (running[s], s))  # fewest running first
                task = queues[studio].popleft()
                if not queues[studio]:
                    del queues[studio]
                node = self._place(task, nodes)
                if node is not None:
                    self.placed(node.node_id, task.kind)
                    node.slots_used += task.slots
                    running[studio] += 1
                    plan.append((task, node.node_id))
        return plan

    def _place(self, task: TaskView, nodes: list[NodeView]) -> NodeView | None:
        candidates = [n for n in nodes if fits(task, n) and self.allowed(n.node_id, task.kind)]
        # Most free slots first: spreads work over the farm instead of filling one node.
        return max(candidates, key=lambda n: (n.slots_free, n.node_id), default=None)
