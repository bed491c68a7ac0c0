"""The scheduling policy written the plain way: every node checked for every task, every
studio for every placement (O(nodes x tasks) a round). It was the farm's scheduler until the
indexed one (`pipelines.farm.control.scheduler`); it stays as the oracle the indexed one is
checked against (tests/unit/test_scheduler_index.py) and as the baseline of
`bench/farm_scale.py`."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable

from pipelines.farm.control.task_view import NodeView, TaskView, fits, meets


class ReferenceScheduler:
    def __init__(self, allowed: Callable[[str, str], bool] = lambda node, kind: True,
                 placed: Callable[[str, str], None] = lambda node, kind: None):
        self.allowed = allowed
        self.placed = placed

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
        # A task bigger than every node that meets its needs takes a whole largest one.
        largest = max((n.slots_total for n in nodes if meets(task, n)), default=0.0)
        need = min(task.slots, largest)
        candidates = [n for n in nodes
                      if fits(task, n, need) and self.allowed(n.node_id, task.kind)]
        # Most free slots first: spreads work over the farm instead of filling one node.
        return max(candidates, key=lambda n: (n.slots_free, n.node_id), default=None)
