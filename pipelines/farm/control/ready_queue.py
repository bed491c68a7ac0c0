"""The ready tasks, kept between rounds in the order the scheduler takes them.

Tasks are grouped in lanes: one per job and requirement set (a layered job has one per
layer that asks for something else). Every task of a lane places the same way, so when a
lane's first task finds no node in a round, none of the others would: the lane is set
aside for the rest of the round in O(1), instead of trying each of its tasks. A round's cost
so grows with the tasks it places and the lanes it sets aside, not with the queue's length.

Per priority, each studio's lanes sit in a heap ordered by job age, then job id, then task
index: the order the scheduler always used. Tasks within a lane are a heap by index.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipelines.farm.control.task_view import TaskView

LaneKey = tuple


def lane_key(task: TaskView) -> LaneKey:
    return (task.priority, task.studio_id, task.job_id, task.kind, task.slots, task.gpus,
            task.memory_bytes, task.tags, task.bad_nodes)


@dataclass
class Lane:
    key: LaneKey
    seq: int  # unique, so heap entries never compare lanes
    tasks: list[tuple[int, str]] = field(default_factory=list)  # (index, task id) heap
    in_heap: bool = False


class ReadyQueue:
    def __init__(self, tasks: Iterable[TaskView] = ()):
        self.views: dict[str, TaskView] = {}
        self.by_job: dict[str, set[str]] = {}
        self.lane_of: dict[str, Lane] = {}
        self.lanes: dict[LaneKey, Lane] = {}
        # priority → studio → heap of (job created, job id, first index, seq, lane)
        self.levels: dict[int, dict[str, list[tuple[float, str, int, int, Lane]]]] = {}
        self._seq = itertools.count()
        for task in tasks:
            self.add(task)

    def __len__(self) -> int:
        return len(self.views)

    def __contains__(self, task_id: str) -> bool:
        return task_id in self.views

    def add(self, task: TaskView) -> None:
        """Queue a ready task (again: its view replaces the one queued before)."""
        self.discard(task.task_id)
        key = lane_key(task)
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = Lane(key, next(self._seq))
        self.views[task.task_id] = task
        self.by_job.setdefault(task.job_id, set()).add(task.task_id)
        self.lane_of[task.task_id] = lane
        heapq.heappush(lane.tasks, (task.index, task.task_id))
        if not lane.in_heap or lane.tasks[0][1] == task.task_id:
            self._push(lane, task)

    def discard(self, task_id: str) -> TaskView | None:
        """Drop a task (leased, cancelled, paused); its heap entry is dropped lazily."""
        self.lane_of.pop(task_id, None)
        view = self.views.pop(task_id, None)
        if view is not None:
            tasks = self.by_job[view.job_id]
            tasks.discard(task_id)
            if not tasks:
                del self.by_job[view.job_id]
        return view

    def discard_job(self, job_id: str) -> None:
        for task_id in list(self.by_job.get(job_id, ())):
            self.discard(task_id)

    def of_job(self, job_id: str) -> int:
        return len(self.by_job.get(job_id, ()))

    def _push(self, lane: Lane, first: TaskView) -> None:
        studios = self.levels.setdefault(first.priority, {})
        heapq.heappush(studios.setdefault(first.studio_id, []),
                       (first.job_created_s, first.job_id, first.index, lane.seq, lane))
        lane.in_heap = True

    def _first(self, lane: Lane) -> TaskView | None:
        while lane.tasks:
            index, task_id = lane.tasks[0]
            if self.lane_of.get(task_id) is lane:
                return self.views[task_id]
            heapq.heappop(lane.tasks)  # discarded, or queued again in another lane
        return None

    # -- what a round uses ------------------------------------------------------------------
    def priorities(self) -> list[int]:
        return sorted(self.levels, reverse=True)

    def studios(self, priority: int) -> list[str]:
        return list(self.levels.get(priority, {}))

    def head(self, priority: int, studio_id: str) -> tuple[Lane, TaskView] | None:
        """The studio's next task at this priority, and its lane; None when it has none."""
        studios = self.levels.get(priority, {})
        heap = studios.get(studio_id)
        while heap:
            created, job_id, index, seq, lane = heap[0]
            first = self._first(lane)
            if first is None:
                heapq.heappop(heap)
                lane.in_heap = False
                self.lanes.pop(lane.key, None)
                continue
            if first.index != index:  # the entry is out of date: file it again
                heapq.heapreplace(heap, (created, job_id, first.index, seq, lane))
                continue
            return lane, first
        studios.pop(studio_id, None)
        if not studios:
            self.levels.pop(priority, None)
        return None

    def take(self, lane: Lane, task: TaskView) -> None:
        """The lane's first task was placed: it leaves the queue."""
        heapq.heappop(lane.tasks)
        self.discard(task.task_id)

    def set_aside(self, priority: int, studio_id: str, lane: Lane) -> None:
        """Out of this round (nothing of it fits): `restore` puts it back afterwards."""
        heap = self.levels[priority][studio_id]
        assert heap[0][4] is lane
        heapq.heappop(heap)
        lane.in_heap = False

    def restore(self, lanes: list[Lane]) -> None:
        for lane in lanes:
            first = self._first(lane)
            if first is not None and not lane.in_heap:
                self._push(lane, first)
