"""The scheduler's ready queue, kept in step with MongoDB by reading only what changed.

The queue lives in the dispatcher between rounds. A job's ready tasks are read when the job
is new to the dispatcher, when it was steered through the API (`wake(job_id)`), when the
dispatcher itself made some of its tasks ready again (a retry, a node lost, a dependency
met: `JobTracker.made_ready`), when a retry's delay runs out, when a lease it planned did
not hold, or when the window of it the queue holds runs low (see WINDOW). A round that
changes nothing reads nothing but the tasks it leases. Once a tick the list of schedulable
jobs is read again (one indexed query): a job paused, cancelled or
reprioritised elsewhere, or one whose counts say it has ready tasks the queue lacks, is
read again then.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from typing import Any

from pipelines.farm.control.ready_queue import ReadyQueue
from pipelines.farm.control.task_view import task_view
from pipelines.farm.store import SCHEDULABLE, FarmStore

log = logging.getLogger("farm.dispatcher")
# A round reads jobs for at most this long (a steered one always): a dispatcher that starts
# on a thousand queued jobs fills the farm from the first ones read, not after reading all.
READ_BUDGET_S = 0.15
# A job is read a window at a time: its first ready tasks by index. A job whose window
# drains in a round gets one twice as large when it is read again, so one job of 100,000
# frames fills an empty farm in a few rounds while a thousand small jobs cost a thousand
# small reads, not every ready task of each (reading costs about 70 us a task embedded).
WINDOW = 64
MAX_WINDOW = 8192


def _placement(job: dict[str, Any]) -> tuple:
    """What of a job decides where and in which order its tasks go."""
    return (job.get("status"), job.get("priority"), job.get("created_s"),
            tuple(job.get("bad_nodes", [])))


def _urgency(job: dict[str, Any]) -> tuple:
    return (-job.get("priority", 0), job.get("created_s", 0.0), job["_id"])


class QueueFeed:
    def __init__(self, store: FarmStore, clock: Callable[[], float] = time.time):
        self.store = store
        self.clock = clock
        self.queue = ReadyQueue()
        self.jobs: dict[str, dict[str, Any]] = {}  # the schedulable jobs, by id
        self.list_stale = True  # read the list of schedulable jobs again next round
        self.to_read: set[str] = set()  # jobs whose ready tasks are read next round
        self.unread: dict[str, None] = {}  # jobs never read yet, the most urgent first
        # Jobs whose counts say they have ready tasks the queue lacks, counted after the
        # queue last read them: read again after the new ones.
        self.lacking: dict[str, None] = {}
        self.read_at: dict[str, float] = {}
        self.read_to: dict[str, int] = {}  # the last task index a job's reads reached
        self.window: dict[str, int] = {}  # how many ready tasks a job's next read takes
        self.more: set[str] = set()  # jobs with ready tasks beyond those the queue holds
        self.refill: dict[str, None] = {}  # of those, jobs whose queued tasks ran low
        self.due: list[tuple[float, str]] = []  # (when, job): a retry's delay runs out

    def job_changed(self, job_id: str | None) -> None:
        """Steered or new (None: some job was submitted or reprioritised)."""
        if job_id is None:
            self.list_stale = True
        else:
            self.to_read.add(job_id)

    def placed(self, job_ids: set[str]) -> None:
        """Some of these jobs' tasks were placed: a window that ran low is read again."""
        for job_id in job_ids & self.more:
            left = self.queue.of_job(job_id)
            if left == 0:
                self.window[job_id] = min(MAX_WINDOW, 2 * self.window.get(job_id, WINDOW))
            if left < self.window.get(job_id, WINDOW) // 2:
                self.refill[job_id] = None

    async def refresh(self, recheck: bool = False) -> None:
        """Bring the queue up to date; `recheck` (once a tick) reads the job list again."""
        now = self.clock()
        while self.due and self.due[0][0] <= now:
            self.to_read.add(heapq.heappop(self.due)[1])
        if self.list_stale or recheck:
            self.list_stale = False
            await self._read_list(recheck)
        to_read, self.to_read = self.to_read, set()
        for job_id in to_read:
            self.unread.pop(job_id, None)
            await self._read_job(job_id, now)
        started = time.monotonic()
        for waiting in (self.refill, self.unread, self.lacking):
            while waiting and time.monotonic() - started < READ_BUDGET_S:
                job_id = next(iter(waiting))
                del waiting[job_id]
                await self._read_job(job_id, now, refill=waiting is self.refill)

    async def _read_list(self, recheck: bool) -> None:
        docs = await self.store.schedulable_jobs()
        for job_id in self.jobs.keys() - docs.keys():
            self.queue.discard_job(job_id)  # paused, cancelled or over
            self._forget(job_id)
        unread = []
        for job_id, doc in docs.items():
            known = self.jobs.get(job_id)
            if known is None:
                if job_id not in self.unread:
                    unread.append(doc)
            elif _placement(known) != _placement(doc):
                self.to_read.add(job_id)
            elif recheck and doc.get("counts", {}).get("ready") and \
                    not self.queue.of_job(job_id) and \
                    doc.get("updated_s", 0.0) > self.read_at.get(job_id, 0.0):
                self.lacking[job_id] = None
        for doc in sorted(unread, key=_urgency):
            self.unread[doc["_id"]] = None
        self.unread = {j: None for j in self.unread if j in docs}
        self.lacking = {j: None for j in self.lacking if j in docs}
        self.refill = {j: None for j in self.refill if j in docs}
        self.jobs = {j: d for j, d in docs.items() if j not in self.unread}

    async def _read_job(self, job_id: str, now: float, refill: bool = False) -> None:
        """The job's first window of ready tasks; `refill`: the window after those read
        last (the queue holds those still ready: a task made ready again behind them is
        read by a whole read, as every change but a placement brings one)."""
        job = await self.store.job(job_id)
        window = self.window.get(job_id, WINDOW)
        after = self.read_to.get(job_id, -1) if refill else -1
        tasks = await self.store.ready_of(job_id, window, after) \
            if job and job["status"] in SCHEDULABLE else []
        self.read_at[job_id] = now
        if not refill:
            self.queue.discard_job(job_id)
        self.refill.pop(job_id, None)
        if not job or job["status"] not in SCHEDULABLE:
            self.jobs.pop(job_id, None)
            self._forget(job_id)
            return
        if len(tasks) == window:
            self.more.add(job_id)
        else:
            self.more.discard(job_id)
        self.jobs[job_id] = job
        self.read_to[job_id] = max((t["index"] for t in tasks), default=after)
        later = [t["not_before_s"] for t in tasks if t.get("not_before_s", 0.0) > now]
        for task in tasks:
            if task.get("not_before_s", 0.0) <= now:
                try:
                    view = task_view(task, job)
                except (KeyError, TypeError):  # one malformed document must not stop the farm
                    log.error("task %s cannot be scheduled: its document or its job's lacks "
                              "a field", task.get("_id"), extra={"job_id": job_id})
                    continue
                self.queue.add(view)
        if later:
            heapq.heappush(self.due, (min(later), job_id))

    def _forget(self, job_id: str) -> None:
        self.read_at.pop(job_id, None)
        self.read_to.pop(job_id, None)
        self.window.pop(job_id, None)
        self.more.discard(job_id)
        self.refill.pop(job_id, None)
