"""A ready task and a node as the scheduler sees them."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.farm.control.node_index import meets as meets_shape


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


@dataclass(frozen=True, slots=True)
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


def meets(task: TaskView, node: NodeView) -> bool:
    """The node has what the task needs besides slots (GPUs, memory, tags)."""
    return meets_shape((node.gpus, node.memory_bytes, node.tags), task.gpus,
                       task.memory_bytes, task.tags)


def fits(task: TaskView, node: NodeView, slots: float | None = None) -> bool:
    """`slots`: what the task needs of the node's free slots, when not all it asks for
    (see `Scheduler`: a task bigger than any node takes a whole one)."""
    return (node.slots_free + 1e-9 >= (task.slots if slots is None else slots)
            and meets(task, node) and node.node_id not in task.bad_nodes)
