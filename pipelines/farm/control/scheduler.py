"""Which ready task goes to which node: priority, then fairness across studios, then age.

The policy: higher priorities first; within a priority, the studio with the fewest running
tasks goes next (ties by studio id), and takes its oldest job's lowest-index task; the task
goes to the fitting node with the most free slots (ties by node id), unless the node's
circuit is open or it is on the job's bad list. A task asking for more slots than any node
that meets its other needs is ever offered waits for a whole one of the largest (an idle
node, in the dispatcher's views) and runs there alone, rather than never.

The structures that make a round cost what it places (docs/farm.md, "At scale"): the
queue persists between rounds (`ReadyQueue`), the nodes are indexed by shape
(`NodeIndex`), and the studio that goes next comes from a heap of running counts.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable

from pipelines.farm.control.node_index import NodeIndex, Shape
from pipelines.farm.control.ready_queue import Lane, ReadyQueue
from pipelines.farm.control.task_view import NodeView, TaskView, fits, task_view

__all__ = ["NodeView", "Scheduler", "TaskView", "fits", "node_index", "task_view"]


def node_index(nodes: list[NodeView],
               farm_sizes: Callable[[], dict[Shape, float]] | None = None) -> NodeIndex:
    return NodeIndex(((n.node_id, n.slots_free, (n.gpus, n.memory_bytes, n.tags), n.slots_total)
                      for n in nodes), farm_sizes)


class Scheduler:
    """Plans assignments for one round. `allowed(node_id, kind)` is the circuit check."""

    def __init__(self, allowed: Callable[[str, str], bool] = lambda node, kind: True,
                 placed: Callable[[str, str], None] = lambda node, kind: None):
        self.allowed = allowed
        self.placed = placed  # told at once, so a half-open node gets one trial per round

    def plan(self, tasks: list[TaskView], nodes: list[NodeView],
             running_by_studio: dict[str, int]) -> list[tuple[TaskView, str]]:
        """One round over `tasks` alone (a queue built for it); `nodes` are updated."""
        plan = self.place(ReadyQueue(tasks), node_index(nodes), running_by_studio)
        by_id = {n.node_id: n for n in nodes}
        for task, node_id in plan:
            by_id[node_id].slots_used += task.slots
        return plan

    def place(self, queue: ReadyQueue, nodes: NodeIndex, running_by_studio: dict[str, int],
              limit: int | None = None) -> list[tuple[TaskView, str]]:
        """Take what fits from `queue` (placed tasks leave it), at most `limit` tasks."""
        running = defaultdict(int, running_by_studio)
        plan: list[tuple[TaskView, str]] = []
        set_aside: list[Lane] = []
        for priority in queue.priorities():
            turns = [(running[s], s) for s in queue.studios(priority)]
            heapq.heapify(turns)
            while turns and nodes.free_total > 0 and (limit is None or len(plan) < limit):
                count, studio = heapq.heappop(turns)
                head = queue.head(priority, studio)
                if head is None:
                    continue  # nothing left at this priority
                lane, task = head
                node_id = self._node_for(task, nodes)
                if node_id is None:
                    queue.set_aside(priority, studio, lane)
                    set_aside.append(lane)
                else:
                    queue.take(lane, task)
                    nodes.take(node_id, task.slots)
                    self.placed(node_id, task.kind)
                    running[studio] = count = count + 1
                    plan.append((task, node_id))
                heapq.heappush(turns, (count, studio))
        queue.restore(set_aside)
        return plan

    def _node_for(self, task: TaskView, nodes: NodeIndex) -> str | None:
        shapes = nodes.fitting_shapes(task.gpus, task.memory_bytes, task.tags)
        need = nodes.need(task.slots, task.gpus, task.memory_bytes, task.tags, shapes)
        return nodes.best(need, shapes, lambda node_id: node_id in task.bad_nodes
                          or not self.allowed(node_id, task.kind))
