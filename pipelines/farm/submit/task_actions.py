"""What people do to single tasks, or to the tasks of some frames: kill a running one, run
finished ones again, skip ("eat") one that has not run. The job follows: the dispatcher is
woken with the job's id and recounts it (a retried task makes a completed job run again; a
skipped one counts as done for the job and for the tasks that depend on it).
"""

from __future__ import annotations

from typing import Any

from pipelines.errors import Conflict
from pipelines.farm.frames import parse_frames
from pipelines.farm.models import ACTIVE, JobStatus, TaskState, public_task
from pipelines.farm.submit.jobs import JobService
from pipelines.identity.models import Principal

# A task that ended may run again; one that is waiting, queued or running has yet to end.
RETRYABLE = (TaskState.SUCCEEDED.value, TaskState.FAILED.value, TaskState.DEAD.value,
             TaskState.SKIPPED.value)
# A task may be skipped until it runs (a running one is killed first).
SKIPPABLE = (TaskState.WAITING.value, TaskState.READY.value, TaskState.PAUSED.value,
             TaskState.FAILED.value, TaskState.DEAD.value)
# Jobs whose tasks may be retried: not paused (resume first) nor cancelled.
STEERABLE = (JobStatus.WAITING.value, JobStatus.QUEUED.value, JobStatus.RUNNING.value,
             JobStatus.COMPLETED.value, JobStatus.FAILED.value)


class TaskActions:
    def __init__(self, jobs: JobService):
        self.jobs = jobs
        self.store = jobs.store

    async def kill(self, principal: Principal, task_id: str) -> dict[str, Any]:
        """Mark a running task killed; the dispatcher stops it on its node next round."""
        task, job = await self._task_and_job(principal, task_id)
        killed = await self.store.set_task(
            {"_id": task_id, "attempt": task["attempt"], "state": {"$in": list(ACTIVE)}},
            {"state": TaskState.FAILED.value, "error_class": "killed",
             "error": f"killed by {principal.user_id}", "finished_s": self.jobs.clock()})
        if not killed:
            raise Conflict(f"the task is {task['state']}, not running", code="task_not_running")
        await self._told(principal, job, "task.killed", [task_id],
                         {"attempt": task["attempt"]})
        return await self._out(principal, task_id)

    async def retry(self, principal: Principal, task_id: str) -> dict[str, Any]:
        task, job = await self._task_and_job(principal, task_id)
        await self._retry(principal, job, [task_id], f"the task is {task['state']}")
        return await self._out(principal, task_id)

    async def retry_frames(self, principal: Principal, job_id: str,
                           frames: str) -> dict[str, Any]:
        """Run again every finished task holding one of `frames` (`1-10`, `5,7`)."""
        wanted = set(parse_frames(frames))
        job = await self.jobs.get_doc(principal, job_id)
        self.jobs.may_steer(principal, job)
        tasks = await self.store.tasks.find({"job_id": job_id},
                                            {"frames": 1, "state": 1}).to_list()
        ids = [t["_id"] for t in tasks
               if t["state"] in RETRYABLE and wanted & set(t.get("frames") or [])]
        await self._retry(principal, job, ids, f"no task of frames {frames} has ended")
        return await self.jobs.get(principal, job_id)

    async def skip(self, principal: Principal, task_id: str) -> dict[str, Any]:
        task, job = await self._task_and_job(principal, task_id)
        skipped = await self.store.set_task(
            {"_id": task_id, "attempt": task["attempt"], "state": {"$in": list(SKIPPABLE)}},
            {"state": TaskState.SKIPPED.value, "finished_s": self.jobs.clock(),
             "node_id": None, "error": f"skipped by {principal.user_id}"})
        if not skipped:
            raise Conflict(f"the task is {task['state']}: only a task that is not running "
                           f"and did not succeed may be skipped (kill a running one first)",
                           code="task_state")
        await self._told(principal, job, "task.skipped", [task_id], {})
        return await self._out(principal, task_id)

    async def _retry(self, principal: Principal, job: dict[str, Any], task_ids: list[str],
                     nothing: str) -> None:
        if job["status"] not in STEERABLE:
            raise Conflict(f"the job is {job['status']}: resume it first"
                           if job["status"] == JobStatus.PAUSED.value
                           else f"the job is {job['status']}", code="job_state")
        # Waiting first: what each waits for is checked again, then it runs.
        retried = await self.store.set_job_tasks(job["_id"], list(RETRYABLE), {
            "state": TaskState.WAITING.value, "failures": 0, "not_before_s": 0.0,
            "error": None, "error_class": None, "finished_s": None, "node_id": None},
            task_ids=task_ids) if task_ids else 0
        if retried == 0:
            raise Conflict(f"nothing to retry: {nothing}", code="nothing_to_retry")
        if job["status"] in (JobStatus.COMPLETED.value, JobStatus.FAILED.value):
            await self.store.set_job(job["_id"], {
                "status": JobStatus.QUEUED.value, "reason": None, "finished_s": None,
                "updated_s": self.jobs.clock()}, only_if_status=[job["status"]])
        await self._told(principal, job, "task.retried", task_ids, {})

    async def _told(self, principal: Principal, job: dict[str, Any], action: str,
                    task_ids: list[str], details: dict[str, Any]) -> None:
        await self.jobs.wake(job["_id"])
        one = {"task_id": task_ids[0]} if len(task_ids) == 1 else {"task_ids": task_ids}
        await self.jobs.events.append(job["studio_id"], action, f"job:{job['_id']}",
                                      {"job_id": job["_id"], **one, **details,
                                       "by": principal.user_id})
        await self.jobs.audit.record(job["studio_id"], action, actor=principal.actor(),
                                     target={"type": "job", "id": job["_id"], **one})

    async def _task_and_job(self, principal: Principal,
                            task_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        task = await self.jobs.task_doc(principal, task_id)
        job = await self.jobs.get_doc(principal, task["job_id"])
        self.jobs.may_steer(principal, job)
        return task, job

    async def _out(self, principal: Principal, task_id: str) -> dict[str, Any]:
        task = await self.jobs.task_doc(principal, task_id)
        return public_task(task, (await self.store.history([task_id]))[task_id])
