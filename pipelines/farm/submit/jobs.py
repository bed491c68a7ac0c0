"""Jobs as the API sees them: submit, read, and steer (pause, resume, cancel, retry)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from pipelines.assets.versions import Versions
from pipelines.clock import iso
from pipelines.errors import Conflict, Forbidden, InvalidInput, NotFound
from pipelines.events.log import EventLog
from pipelines.farm.frames import chunk, parse_frames
from pipelines.farm.models import (
    ACTIVE,
    JobKind,
    JobStatus,
    JobSubmit,
    TaskState,
    public_job,
    public_task,
)
from pipelines.farm.store import FarmStore
from pipelines.farm.submit.records import check_template, new_job, new_task
from pipelines.farm.submit.render import RenderJobs, render_totals
from pipelines.identity.audit import AuditLog
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action, can
from pipelines.identity.records import AUDIT
from pipelines.paging import fetch_page

Wake = Callable[..., Awaitable[None]]  # wake(job_id=None): the job is recounted too

# action: (job statuses it applies to, the status it leaves), and the event it is.
STEERING = {"pause": (["queued", "running"], JobStatus.PAUSED),
            "resume": (["paused"], JobStatus.QUEUED),
            "cancel": (["queued", "running", "paused", "failed"], JobStatus.CANCELLED),
            "retry": (["failed", "running", "queued"], JobStatus.QUEUED)}
STEERED = {"pause": "paused", "resume": "resumed", "cancel": "cancelled", "retry": "retried"}


class JobNotFound(NotFound):
    code = "job_not_found"


class TaskNotFound(NotFound):
    code = "task_not_found"


class JobService:
    def __init__(self, db, events: EventLog, wake: Wake,
                 clock: Callable[[], float] = time.time):
        self.store = FarmStore(db)
        self.renders = RenderJobs(db, clock)
        self.versions = Versions(db)
        self.events = events
        self.wake = wake
        self.clock = clock
        self.audit = AuditLog(db[AUDIT], clock)

    async def submit(self, principal: Principal, body: JobSubmit) -> dict[str, Any]:
        if body.kind == JobKind.COMMAND:
            if not can(principal.role, Action.JOB_SUBMIT_COMMAND):
                raise Forbidden("command jobs are for TDs and admins")
            job, tasks = self._command_job(principal, body)
        elif body.kind == JobKind.RENDER:
            job, tasks = await self.renders.build(principal, body)
        else:
            job, tasks = await self._preview_job(principal, body)
        return await self.store_and_announce(job, tasks)

    async def store_and_announce(self, job: dict, tasks: list[dict]) -> dict[str, Any]:
        job["task_count"] = len(tasks)
        job["counts"] = {TaskState.READY.value: sum(t["state"] == "ready" for t in tasks),
                         TaskState.WAITING.value: sum(t["state"] == "waiting" for t in tasks)}
        await self.store.insert_job(job, tasks)
        await self.events.append(job["studio_id"], "job.submitted", f"job:{job['_id']}",
                                 {"job": public_job(job)})
        await self.wake()
        return public_job(job)

    def _command_job(self, principal: Principal, body: JobSubmit) -> tuple[dict, list[dict]]:
        if not body.command:
            raise InvalidInput("command jobs need `command` (an argument list)",
                               code="command_missing")
        check_template(body.command)
        frames = parse_frames(body.frames or "1")
        job = new_job(principal.studio_id, principal.user_id, body, self.clock())
        tasks = [new_task(job, i, {"argv": body.command}, frames=part)
                 for i, part in enumerate(chunk(frames, body.chunk_size))]
        return job, tasks

    async def _preview_job(self, principal: Principal, body: JobSubmit) -> tuple[dict, list]:
        if not (body.asset_id and body.version):
            raise InvalidInput("preview jobs need `asset_id` and `version`", code="target_missing")
        version = await self.versions.one(principal.studio_id, body.asset_id, body.version)
        if version is None:
            raise NotFound("no such version", code="version_not_found")
        return self.preview_job_for(version, principal.user_id, body)

    def preview_job_for(self, version: dict, submitted_by: str,
                        body: JobSubmit | None = None) -> tuple[dict, list[dict]]:
        body = body or JobSubmit.model_validate({
            "kind": "preview", "name": f"preview v{version['number']}", "priority": 70,
            "task_timeout_s": 1800})
        target = {"asset_id": version["asset_id"], "version": version["number"]}
        job = new_job(version["studio_id"], submitted_by, body, self.clock(), target)
        payload = {"key": version["key"], "sha256": version["sha256"],
                   "family": version["media"]["family"], "filename": version["filename"],
                   **target}
        return job, [new_task(job, 0, payload)]

    async def get_doc(self, principal: Principal, job_id: str) -> dict[str, Any]:
        job = await self.store.jobs.find_one({"_id": job_id, "studio_id": principal.studio_id})
        if job is None:
            raise JobNotFound("no such job")
        return job

    async def get(self, principal: Principal, job_id: str) -> dict[str, Any]:
        """One job; a render job with its per-job totals (frames, render time, memory)."""
        job = await self.get_doc(principal, job_id)
        shown = public_job(job)
        if job["kind"] == JobKind.RENDER and shown["render"]:
            shown["render"] |= await render_totals(self.store, job)
        return shown

    async def previews(self, principal: Principal, job_id: str) -> dict[str, Any]:
        """Storage keys of a render job's latest progressive preview and finished movie."""
        job = await self.get_doc(principal, job_id)
        render = job.get("render") or {}  # other kinds: neither, for now
        preview, published = render.get("preview"), render.get("published")
        movie = None
        if published:
            version = await self.versions.one(job["studio_id"], published["asset_id"],
                                              published["version"])
            movie = version and published | {"key": version["key"]}
        return {"progressive": preview and {k: preview[k] for k in ("key", "frames", "of")},
                "movie": movie}

    async def list_jobs(self, principal: Principal, *, limit: int, cursor: str | None,
                        status: str | None, kind: str | None, submitter: str | None) -> dict:
        query: dict[str, Any] = {"studio_id": principal.studio_id}
        for field, value in (("status", status), ("kind", kind), ("submitted_by", submitter)):
            if value:
                query[field] = value
        docs, next_cursor = await fetch_page(self.store.jobs, query, "created_s", limit=limit,
                                             cursor=cursor, descending=True, max_limit=100)
        return {"items": [public_job(d) for d in docs], "next_cursor": next_cursor}

    def _may_steer(self, principal: Principal, job: dict) -> None:
        if job["submitted_by"] != principal.user_id and not can(principal.role,
                                                                Action.JOB_MANAGE_ANY):
            raise Forbidden("only the submitter, a supervisor, producer or admin may steer "
                            "this job")

    async def steer(self, principal: Principal, job_id: str, action: str, *,
                    requeue: bool = False) -> dict[str, Any]:
        """Pause, resume, cancel or retry a job (docs/farm.md, "Steering a job")."""
        job = await self.get_doc(principal, job_id)
        self._may_steer(principal, job)
        now = self.clock()
        allowed, target = STEERING[action]
        if job["status"] not in allowed:
            raise Conflict(f"a {job['status']} job cannot be {action}d", code="job_state")
        if action == "retry":
            await self._retry_tasks(job_id)
        fields: dict[str, Any] = {"status": target.value, "updated_s": now, "reason": None}
        if action == "cancel":
            fields["finished_s"] = now
        # The job first: once it reads cancelled (or paused) no hook publishes for it and
        # no new lease is made; then its tasks, which the dispatcher stops on their nodes.
        if not await self.store.set_job(job_id, fields, only_if_status=allowed):
            raise Conflict("the job changed meanwhile; try again", code="job_state")
        if action == "cancel":
            await self.store.set_job_tasks(
                job_id, [*ACTIVE, "waiting", "ready", "paused", "failed"],
                {"state": TaskState.CANCELLED.value, "finished_s": now})
        elif action == "pause":
            # Ready and leased-but-not-started tasks (and running ones, when asked to) are
            # held, uncharged: a state no round leases, whatever it read of the job.
            held = ["ready", *(ACTIVE if requeue else [TaskState.LEASED.value])]
            await self.store.set_job_tasks(job_id, held, {
                "state": TaskState.PAUSED.value, "node_id": None, "not_before_s": 0.0})
        elif action == "resume":
            await self.store.set_job_tasks(job_id, [TaskState.PAUSED.value],
                                           {"state": TaskState.READY.value})
        await self.wake(job_id)
        await self.events.append(job["studio_id"], f"job.{STEERED[action]}", f"job:{job_id}",
                                 {"job_id": job_id, "by": principal.user_id,
                                  **({"requeue": True} if requeue else {})})
        await self.audit.record(job["studio_id"], f"job.{STEERED[action]}",
                                actor=principal.actor(), target={"job_id": job_id},
                                details={"requeue": True} if requeue else None)
        return await self.get(principal, job_id)

    async def _retry_tasks(self, job_id: str) -> None:
        retried = await self.store.set_job_tasks(job_id, ["failed", "dead"], {
            "state": TaskState.READY.value, "failures": 0, "not_before_s": 0.0,
            "error": None, "error_class": None})
        if retried == 0:
            raise Conflict("nothing to retry: no failed or dead tasks", code="nothing_to_retry")

    async def set_priority(self, principal: Principal, job_id: str, priority: int) -> dict:
        job = await self.get_doc(principal, job_id)
        self._may_steer(principal, job)
        await self.store.set_job(job_id, {"priority": priority, "updated_s": self.clock()})
        await self.wake()
        return await self.get(principal, job_id)

    async def task_doc(self, principal: Principal, task_id: str) -> dict[str, Any]:
        task = await self.store.tasks.find_one({"_id": task_id, "studio_id": principal.studio_id})
        if task is None:
            raise TaskNotFound("no such task")
        return task

    async def tasks(self, principal: Principal, job_id: str, *, limit: int,
                    cursor: str | None) -> tuple[list[dict], str | None]:
        await self.get_doc(principal, job_id)
        docs, next_cursor = await fetch_page(self.store.tasks, {"job_id": job_id}, "index",
                                             limit=limit, cursor=cursor, max_limit=500)
        history = await self.store.history([d["_id"] for d in docs])
        return [public_task(d, history[d["_id"]]) for d in docs], next_cursor

    async def kill(self, principal: Principal, task_id: str) -> dict[str, Any]:
        """Mark a running task killed; the dispatcher stops it on its node next round."""
        task = await self.task_doc(principal, task_id)
        job = await self.get_doc(principal, task["job_id"])
        self._may_steer(principal, job)
        killed = await self.store.set_task(
            {"_id": task_id, "attempt": task["attempt"], "state": {"$in": list(ACTIVE)}},
            {"state": TaskState.FAILED.value, "error_class": "killed",
             "error": f"killed by {principal.user_id}", "finished_s": self.clock()})
        if not killed:
            raise Conflict(f"the task is {task['state']}, not running", code="task_not_running")
        await self.wake(task["job_id"])
        await self.events.append(job["studio_id"], "task.killed", f"job:{job['_id']}",
                                 {"job_id": job["_id"], "task_id": task_id,
                                  "attempt": task["attempt"], "by": principal.user_id})
        await self.audit.record(job["studio_id"], "task.killed", actor=principal.actor(),
                                target={"job_id": job["_id"], "task_id": task_id})
        task = await self.task_doc(principal, task_id)
        return public_task(task, (await self.store.history([task_id]))[task_id])

    async def nodes(self, principal: Principal) -> list[dict[str, Any]]:
        """Farm nodes are shared: other studios' task ids are counted, never shown."""
        docs = await self.store.nodes.find({}).sort("_id", 1).to_list()
        mine = {t["_id"] for t in await self.store.tasks.find(
            {"studio_id": principal.studio_id, "state": {"$in": list(ACTIVE)}},
            {"_id": 1}).to_list()}
        return [{"node_id": d["_id"], "name": d.get("name", ""), "slots": d["slots"],
                 "slots_used": d["slots_used"],
                 "gpus": d.get("gpus", 0), "tags": d.get("tags", []), "circuit": d["circuit"],
                 "running_tasks": len(d["running_tasks"]),
                 "my_tasks": [t for t in d["running_tasks"] if t in mine],
                 "last_heartbeat_at": iso(d.get("last_heartbeat_s")),
                 "refused": d.get("refused")} for d in docs]
