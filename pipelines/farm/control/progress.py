"""Job status and progress, from task states, written in batches and announced throttled.

Counts are kept in memory as the dispatcher moves tasks (`JobTally`); a job is counted in
the database again when something it did not move exactly changed it, and before it is
declared completed or failed: a final status never rests on arithmetic alone.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from pymongo import UpdateOne

from pipelines.context import request_context
from pipelines.events.log import EventLog
from pipelines.events.throttle import ProgressThrottle
from pipelines.farm.control.eta import estimate
from pipelines.farm.control.job_tally import JobTally
from pipelines.farm.models import ACTIVE, DONE, FINAL_JOB, JobStatus, TaskState
from pipelines.farm.protocol import Progressed
from pipelines.farm.store import FarmStore

log = logging.getLogger("farm.dispatcher")
PROGRESS_EVERY_S = 0.5  # at most two job.progress events a second per job
# A job's counts are written as often as they are announced: a read and a write of the job,
# and a count of its tasks when its kept counts are not known exactly.
COUNTS_EVERY_S = PROGRESS_EVERY_S
# A round spends at most this long counting; the jobs it did not reach go first next round.
# A farm with a thousand busy jobs cannot count them all every round (docs/farm.md).
RECOUNT_BUDGET_S = 0.1
# Kept counts are checked against the database this often anyway: a steer whose wake-up
# never reached the dispatcher (it was restarting) is then seen within this long.
RECOUNT_ANYWAY_S = 30.0


def job_status(current: str, counts: Counter, total: int, waiting: bool = False) -> str:
    """`waiting`: the job still waits for jobs it runs after."""
    if current in (JobStatus.PAUSED.value, JobStatus.CANCELLED.value):
        return current
    if sum(counts[s] for s in DONE) == total:
        return JobStatus.COMPLETED.value
    if counts[TaskState.DEAD.value]:
        return JobStatus.FAILED.value
    runnable = sum(counts[s] for s in (*ACTIVE, "ready", "waiting", "paused"))
    if counts[TaskState.FAILED.value] and not runnable:
        return JobStatus.FAILED.value
    if any(counts[s] for s in ACTIVE) or counts[TaskState.SUCCEEDED.value]:
        return JobStatus.RUNNING.value
    return JobStatus.WAITING.value if waiting else JobStatus.QUEUED.value


class JobTracker:
    def __init__(self, store: FarmStore, events: EventLog, clock: Callable[[], float] = time.time):
        self.store = store
        self.events = events
        self.clock = clock
        self.touched: dict[str, None] = {}  # an ordered set: the longest waiting first
        # Jobs whose counts are known without reading their tasks; one left out is counted.
        self.tallies: dict[str, JobTally] = {}
        # The job being counted now, and whether it was touched meanwhile (the dispatcher
        # actor takes calls, such as a wake-up, while it awaits the database).
        self._counting: str | None = None
        self._counting_spoilt = False
        self.ready_again: set[str] = set()  # jobs with tasks made ready by the dispatcher
        self.task_progress: dict[tuple[str, int], dict[str, Any]] = {}
        self.announcing = ProgressThrottle(PROGRESS_EVERY_S, clock)
        self.counting = ProgressThrottle(COUNTS_EVERY_S, clock)
        self.dependencies_may_have_changed = True

    def touch(self, job_id: str | None) -> None:
        """The job's tasks changed in a way not known exactly: it is counted again."""
        if job_id:
            self.tallies.pop(job_id, None)
            self.touched.setdefault(job_id)
            if job_id == self._counting:  # the count under way may have read too early
                self._counting_spoilt = True

    def count_all_again(self) -> None:
        """After a round's phase failed halfway (the database went away): a write may have
        held without its move being told, so no kept count is trusted."""
        for job_id in list(self.tallies):
            self.touch(job_id)

    def moved(self, job_id: str, layer: str | None, was: str, now: str,
              wall_s: float | None = None) -> None:
        """One of the job's tasks went from state `was` to `now`, by a write whose fence
        held (so exactly this move). `layer` None: not known here, the job is counted."""
        tally = self.tallies.get(job_id)
        if tally is None or layer is None:
            self.touch(job_id)
            return
        tally.move(layer, was, now, wall_s)
        self.touched.setdefault(job_id)

    def made_ready(self, job_id: str) -> None:
        """Some of the job's tasks are ready again (retried, requeued, no longer waiting):
        the ready queue reads the job again."""
        self.ready_again.add(job_id)
        self.touch(job_id)

    def task_succeeded(self) -> None:
        """A success may free waiting tasks: look for them on the next round."""
        self.dependencies_may_have_changed = True

    def progress(self, report: Progressed) -> None:
        fields = self.task_progress.setdefault((report.task_id, report.attempt), {})
        if report.progress is not None:
            fields["progress"] = report.progress
            self.touched.setdefault(report.job_id)  # announced (counts unchanged)
        if report.last_line is not None:
            fields["last_line"] = report.last_line

    async def flush(self) -> None:
        progress, self.task_progress = self.task_progress, {}
        await self.store.apply([
            UpdateOne({"_id": task_id, "attempt": attempt, "state": TaskState.RUNNING.value},
                      {"$set": fields})
            for (task_id, attempt), fields in progress.items()])
        now = self.clock()
        for job_id, tally in self.tallies.items():  # checked even when nothing moves
            if now - tally.counted_s > RECOUNT_ANYWAY_S:
                self.touched.setdefault(job_id)
        touched, self.touched = self.touched, {}
        started = time.monotonic()
        for job_id in touched:
            if time.monotonic() - started > RECOUNT_BUDGET_S or \
                    not self.counting.allow(job_id):
                self.touched.setdefault(job_id)  # out of time, or counted a moment ago
                continue
            await self._refresh(job_id)

    async def _refresh(self, job_id: str) -> None:
        job = await self.store.job(job_id)
        if job is None:
            self.tallies.pop(job_id, None)  # deleted
            return
        with request_context(job.get("request_id")):  # its events carry the submission's
            await self._update(job)

    async def _tally(self, job: dict[str, Any], recount: bool) -> JobTally:
        job_id = job["_id"]
        tally = None if recount else self.tallies.get(job_id)
        now = self.clock()
        if tally is not None and now - tally.counted_s <= RECOUNT_ANYWAY_S:
            return tally
        self._counting, self._counting_spoilt = job_id, False
        try:
            tally = JobTally.from_rows(await self.store.recount(job), now)
        finally:
            self._counting = None
        if not self._counting_spoilt:  # else used this once; counted again next round
            self.tallies[job_id] = tally
        return tally

    def _status(self, job: dict[str, Any], tally: JobTally) -> str:
        return job_status(job["status"], tally.counts(), job["task_count"],
                          waiting=bool(job.get("waiting_on")))

    async def _update(self, job: dict[str, Any]) -> None:
        job_id = job["_id"]
        counted = self.tallies.get(job_id)
        tally = await self._tally(job, recount=False)
        status = self._status(job, tally)
        if tally is counted and status != job["status"] and status in FINAL_JOB:
            tally = await self._tally(job, recount=True)  # confirmed by the database
            status = self._status(job, tally)
        counts, layers = tally.counts(), tally.layer_tallies()
        now = self.clock()
        fields: dict[str, Any] = {"counts": dict(counts), "updated_s": now,
                                  "eta": None if status in FINAL_JOB else estimate(layers)}
        if status != job["status"]:
            fields["status"] = status
            if status in FINAL_JOB:
                fields["finished_s"] = now
        if status == JobStatus.FAILED.value and status != job["status"]:
            fields["reason"] = await self._reason(job_id)
        # Only over the status it read: a steer (cancel, pause, resume) made meanwhile wins,
        # and the job is counted again next round.
        if not await self.store.set_job(job_id, fields, only_if_status=[job["status"]]):
            self.touch(job_id)
            return
        if status in FINAL_JOB:
            self.tallies.pop(job_id, None)  # over: nothing moves its tasks any more
        await self._announce(job, status, counts, fields.get("reason"), fields["eta"])

    async def _reason(self, job_id: str) -> str:
        task = await self.store.ended_badly(job_id)
        if task is None:
            return "a task failed"
        return f"task {task['index']} {task['state']}: {task.get('error_class')}: " \
               f"{task.get('error') or 'no message'}"

    async def _announce(self, job: dict, status: str, counts: Counter, reason: str | None,
                        eta: dict[str, Any] | None) -> None:
        room, job_id = f"job:{job['_id']}", job["_id"]
        data = {"job_id": job_id, "status": status, "counts": dict(counts),
                "total": job["task_count"],
                "done": counts[TaskState.SUCCEEDED.value] / max(1, job["task_count"]),
                "eta": eta}
        if status != job["status"] and status in (JobStatus.COMPLETED.value,
                                                  JobStatus.FAILED.value):
            await self.events.append(job["studio_id"], f"job.{status}", room,
                                     data | ({"reason": reason} if reason else {}))
            log.info("job %s", status, extra={"job_id": job_id, "reason": reason})
            self.announcing.allow(job_id, final=True)  # forget the job: it is over
            self.counting.allow(job_id, final=True)
        elif self.announcing.allow(job_id):
            await self.events.append(job["studio_id"], "job.progress", room, data)
        else:
            self.touched.setdefault(job_id)  # announce the latest counts on a later round
