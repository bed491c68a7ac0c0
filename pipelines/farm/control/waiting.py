"""What waiting tasks wait for, and when they may run: the tasks they depend on (frame by
frame, or a progressive preview's chunks), whole layers of their job, and other jobs.

A job that runs `after` other jobs keeps every task waiting, and lists in `waiting_on` the
ones not completed yet; when one of them fails or is cancelled, it fails too, with the
reason, and its tasks end `failed` (class `prerequisite_failed`) without running.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pymongo import UpdateOne

from pipelines.events.log import EventLog
from pipelines.farm.control.progress import JobTracker
from pipelines.farm.models import DONE, JobStatus, TaskState
from pipelines.farm.store import FarmStore

BROKEN = (JobStatus.FAILED.value, JobStatus.CANCELLED.value)


class Waiting:
    def __init__(self, store: FarmStore, events: EventLog, jobs: JobTracker,
                 clock: Callable[[], float] = time.time):
        self.store, self.events, self.jobs, self.clock = store, events, jobs, clock

    async def promote(self) -> None:
        """Waiting tasks whose dependencies are all done (succeeded or skipped) become
        ready."""
        self.jobs.dependencies_may_have_changed = False
        jobs = await self.store.jobs_waiting()
        held = await self._settle_prerequisites(jobs)
        waiting = await self.store.waiting_tasks([j for j in jobs if j not in held])
        if not waiting:
            return
        deps = await self.store.states_of(sorted({d for t in waiting for d in t["deps"]}))
        layers = {(t["job_id"], name) for t in waiting for name in t.get("wait_layers", [])}
        done = {pair for pair in sorted(layers) if await self.store.layer_done(*pair)}
        ready = [t for t in waiting
                 if all(deps.get(d) in DONE for d in t["deps"])
                 and all((t["job_id"], name) in done for name in t.get("wait_layers", []))]
        await self.store.apply([UpdateOne({"_id": t["_id"], "state": "waiting"},
                                          {"$set": {"state": TaskState.READY.value}})
                                for t in ready])
        for task in ready:
            self.jobs.made_ready(task["job_id"])

    async def _settle_prerequisites(self, jobs: dict[str, dict[str, Any]]) -> set[str]:
        """The jobs still waiting for others (their tasks stay waiting); fails those whose
        prerequisite failed or was cancelled."""
        after = {job_id: job for job_id, job in jobs.items() if job.get("waiting_on")}
        if not after:
            return set()
        statuses = await self.store.job_statuses(
            None, sorted({other for job in after.values() for other in job["waiting_on"]}))
        held: set[str] = set()
        for job_id, job in after.items():
            broken = [o for o in job["waiting_on"] if statuses.get(o, "gone") in (*BROKEN, "gone")]
            if broken:
                await self._fail(job, broken[0], statuses.get(broken[0], "gone"))
                held.add(job_id)
                continue
            pending = [o for o in job["waiting_on"] if statuses[o] != JobStatus.COMPLETED.value]
            if pending != job["waiting_on"]:
                await self.store.set_job(job_id, {"waiting_on": pending})
                self.jobs.touch(job_id)  # recounted: waiting → queued when none is left
            if pending:
                held.add(job_id)
        return held

    async def _fail(self, job: dict[str, Any], other: str, status: str) -> None:
        now, reason = self.clock(), f"job {other}, which it runs after, is {status}"
        await self.store.set_job_tasks(job["_id"], ["waiting", "ready", "paused"], {
            "state": TaskState.FAILED.value, "error_class": "prerequisite_failed",
            "error": reason, "finished_s": now})
        if await self.store.set_job(job["_id"], {
                "status": JobStatus.FAILED.value, "reason": reason, "finished_s": now,
                "updated_s": now, "waiting_on": []}, only_if_status=[job["status"]]):
            await self.events.append(job["studio_id"], "job.failed", f"job:{job['_id']}", {
                "job_id": job["_id"], "status": JobStatus.FAILED.value, "reason": reason})
        self.jobs.touch(job["_id"])
