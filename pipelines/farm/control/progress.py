"""Job status and progress, recomputed from task states in batches, announced throttled."""

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
from pipelines.farm.control.eta import LayerTally, estimate
from pipelines.farm.models import ACTIVE, DONE, FINAL_JOB, JobStatus, TaskState
from pipelines.farm.protocol import Progressed
from pipelines.farm.store import FarmStore

log = logging.getLogger("farm.dispatcher")
PROGRESS_EVERY_S = 0.5  # at most two job.progress events a second per job
RECOUNT_EVERY_S = 0.25  # counting a big job's tasks is the costliest read of a round
# A round spends at most this long counting; the jobs it did not reach go first next round.
# A farm with a thousand busy jobs cannot count them all every round (docs/farm.md).
RECOUNT_BUDGET_S = 0.1


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


def tally(rows: list[dict[str, Any]]) -> tuple[Counter, dict[str, LayerTally]]:
    """The job's counts by state, and each layer's (FarmStore.recount's rows)."""
    counts: Counter = Counter()
    by_layer: dict[str, Counter] = {}
    timing: dict[str, tuple[float | None, float | None]] = {}
    for row in rows:
        counts[row["state"]] += row["n"]
        by_layer.setdefault(row["layer"], Counter())[row["state"]] += row["n"]
        if row["state"] == TaskState.SUCCEEDED.value:
            timing[row["layer"]] = (row["mean_s"], row["sd_s"])
    return counts, {layer: LayerTally(c, *timing.get(layer, (None, None)))
                    for layer, c in by_layer.items()}


class JobTracker:
    def __init__(self, store: FarmStore, events: EventLog, clock: Callable[[], float] = time.time):
        self.store = store
        self.events = events
        self.clock = clock
        self.touched: dict[str, None] = {}  # an ordered set: the longest waiting first
        self.ready_again: set[str] = set()  # jobs with tasks made ready by the dispatcher
        self.task_progress: dict[tuple[str, int], dict[str, Any]] = {}
        self.announcing = ProgressThrottle(PROGRESS_EVERY_S, clock)
        self.counting = ProgressThrottle(RECOUNT_EVERY_S, clock)
        self.dependencies_may_have_changed = True

    def touch(self, job_id: str | None) -> None:
        if job_id:
            self.touched.setdefault(job_id)

    def made_ready(self, job_id: str) -> None:
        """Some of the job's tasks are ready again (retried, requeued, no longer waiting):
        the ready queue reads the job again."""
        self.ready_again.add(job_id)
        self.touch(job_id)

    def task_succeeded(self, job_id: str) -> None:
        """A success may free waiting tasks: look for them on the next round."""
        self.touch(job_id)
        self.dependencies_may_have_changed = True

    def progress(self, report: Progressed) -> None:
        fields = self.task_progress.setdefault((report.task_id, report.attempt), {})
        if report.progress is not None:
            fields["progress"] = report.progress
            self.touch(report.job_id)
        if report.last_line is not None:
            fields["last_line"] = report.last_line

    async def flush(self) -> None:
        progress, self.task_progress = self.task_progress, {}
        await self.store.apply([
            UpdateOne({"_id": task_id, "attempt": attempt, "state": TaskState.RUNNING.value},
                      {"$set": fields})
            for (task_id, attempt), fields in progress.items()])
        touched, self.touched = self.touched, {}
        started = time.monotonic()
        for job_id in touched:
            if time.monotonic() - started > RECOUNT_BUDGET_S or \
                    not self.counting.allow(job_id):
                self.touch(job_id)  # out of time, or counted a moment ago: a later round
                continue
            await self._refresh(job_id)

    async def _refresh(self, job_id: str) -> None:
        job = await self.store.job(job_id)
        if job is None:
            return
        with request_context(job.get("request_id")):  # its events carry the submission's
            await self._recount(job)

    async def _recount(self, job: dict[str, Any]) -> None:
        job_id = job["_id"]
        counts, layers = tally(await self.store.recount(
            job_id, [layer["name"] for layer in job.get("layers") or []]))
        status = job_status(job["status"], counts, job["task_count"],
                            waiting=bool(job.get("waiting_on")))
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
            self.touch(job_id)  # announce the latest counts on a later round
