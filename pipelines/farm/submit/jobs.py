"""Jobs as the API sees them: submit, read, and steer (pause, resume, cancel, retry)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pipelines.assets.versions import Versions
from pipelines.errors import Conflict, Forbidden, InvalidInput, NotFound
from pipelines.events.log import EventLog
from pipelines.farm.models import (
    ACTIVE,
    JobCommon,
    JobKind,
    JobStatus,
    JobSubmit,
    TaskState,
    TypedJobSubmit,
    public_job,
    public_task,
)
from pipelines.farm.store import FarmStore
from pipelines.farm.submit.builtin_types import BUILTINS, check_layer_template, preview_layer
from pipelines.farm.submit.graph import compile_tasks
from pipelines.farm.submit.records import new_job
from pipelines.farm.submit.render import RenderJobs, render_totals
from pipelines.farm.submit.types import Context, load_job_types
from pipelines.identity import audit as audited
from pipelines.identity.audit import AuditLog
from pipelines.identity.models import Principal
from pipelines.identity.permissions import TABLE, Action, can
from pipelines.identity.records import AUDIT
from pipelines.paging import fetch_page

Wake = Callable[..., Awaitable[None]]  # wake(job_id=None): the job is recounted too

# action: (job statuses it applies to, the status it leaves), and the event it is.
STEERING = {"pause": (["waiting", "queued", "running"], JobStatus.PAUSED),
            "resume": (["paused"], JobStatus.QUEUED),
            "cancel": (["waiting", "queued", "running", "paused", "failed"],
                       JobStatus.CANCELLED),
            "retry": (["failed", "running", "queued"], JobStatus.QUEUED)}
STEERED = {"pause": "paused", "resume": "resumed", "cancel": "cancelled", "retry": "retried"}


class JobNotFound(NotFound):
    code = "job_not_found"


class TaskNotFound(NotFound):
    code = "task_not_found"


class JobTypeNotFound(NotFound):
    code = "job_type_not_found"


class UnknownPrerequisite(InvalidInput):
    code = "unknown_prerequisite"


# `POST /jobs` takes these types' settings inline, as fields of the job itself.
INLINE = {JobKind.COMMAND: ("command", "frames", "chunk_size"),
          JobKind.LAYERED: ("layers",),
          JobKind.PREVIEW: ("asset_id", "version"),
          JobKind.RENDER: ("frames", "chunk_size", "render", "command")}
# What each inline kind cannot do without, as its own error code (older than the types).
NEEDED = {JobKind.COMMAND: [("command", "command_missing", "an argument list")],
          JobKind.LAYERED: [("layers", "layers_missing", "a list of layers")],
          JobKind.PREVIEW: [("asset_id", "target_missing", "the asset"),
                            ("version", "target_missing", "the version")],
          JobKind.RENDER: [("render", "render_missing", "scene, target asset, settings"),
                           ("frames", "frames_missing", 'e.g. "1-48"')]}


def _roles(action: Action) -> list[str]:
    return sorted(str(role) for role in TABLE[action])


@dataclass
class Lookups:
    """What the built-in types check a submission against."""

    versions: Versions
    renders: RenderJobs


class JobService:
    def __init__(self, db, events: EventLog, wake: Wake,
                 clock: Callable[[], float] = time.time):
        self.store = FarmStore(db)
        self.versions = Versions(db)
        self.lookups = Lookups(self.versions, RenderJobs(db))
        self.types = load_job_types(BUILTINS)
        self.events = events
        self.wake = wake
        self.clock = clock
        self.audit = AuditLog(db[AUDIT], clock)

    def job_types(self) -> list[dict[str, Any]]:
        return [{"name": t.name, "title": t.title, "description": t.description,
                 "who_may_submit": _roles(t.action),
                 "settings_schema": t.schema()} for t in self.types.values()]

    async def submit(self, principal: Principal, body: JobSubmit) -> dict[str, Any]:
        """A job of one of the inline kinds: its fields are the type's settings."""
        kind = JobKind(body.kind)
        for field, code, what in NEEDED[kind]:
            if getattr(body, field) is None:
                raise InvalidInput(f"{kind} jobs need `{field}` ({what})", code=code)
        common = body.model_dump(include=set(JobCommon.model_fields))
        settings = body.model_dump(include=set(INLINE[kind]), exclude_none=True)
        return await self.submit_typed(principal, kind.value,
                                       TypedJobSubmit(**common, settings=settings))

    async def submit_typed(self, principal: Principal, type_name: str,
                           body: TypedJobSubmit) -> dict[str, Any]:
        job_type = self.types.get(type_name)
        if job_type is None:
            raise JobTypeNotFound(f"no job type {type_name!r}; see GET /api/v1/job-types")
        if not can(principal.role, job_type.action):
            raise Forbidden(f"{type_name} jobs are for {', '.join(_roles(job_type.action))}")
        try:
            settings = job_type.Settings.model_validate(body.settings)
        except ValidationError as exc:
            # Not `validation_failed`: the request's own schema allows any settings object;
            # the type's schema (GET /job-types) is the rule it broke.
            raise InvalidInput("the settings do not match the job type's schema",
                               code="invalid_settings", details=[
                                   {"loc": ["body", "settings", *map(str, e["loc"])],
                                    "msg": e["msg"], "type": e["type"]}
                                   for e in exc.errors()]) from None
        await self._check_after(principal, body.after)
        compiled = await job_type.compile(settings, Context(
            principal, body.requirements.model_dump(), self.lookups))
        for layer in compiled.layers:  # a type's commands are checked like a TD's
            if layer.kind == "command":
                check_layer_template(layer.name, layer.payload["argv"])
        job = new_job(principal.studio_id, principal.user_id, body, job_type.name,
                      self.clock(), compiled.target) | compiled.fields
        stored = await self.store_and_announce(job, compile_tasks(job, compiled.layers))
        await self.audit.record(job["studio_id"], audited.JOB_SUBMITTED, actor=principal.actor(),
                                target={"type": "job", "id": job["_id"]},
                                details={"kind": type_name, "tasks": job["task_count"],
                                         "priority": job["priority"]})
        return stored

    async def _check_after(self, principal: Principal, after: list[str]) -> None:
        known = await self.store.job_statuses(principal.studio_id, after)
        for i, job_id in enumerate(after):
            if job_id not in known:
                raise UnknownPrerequisite(f"no job {job_id} in this studio to wait for",
                                          details=[{"loc": ["body", "after", str(i)],
                                                    "msg": "no such job",
                                                    "type": "unknown_prerequisite"}])

    async def store_and_announce(self, job: dict, tasks: list[dict]) -> dict[str, Any]:
        await self.store.insert_job(job, tasks)
        await self.events.append(job["studio_id"], "job.submitted", f"job:{job['_id']}",
                                 {"job": public_job(job)})
        await self.wake(job["_id"])  # its tasks are read at once
        return public_job(job)

    def preview_job_for(self, version: dict, submitted_by: str) -> tuple[dict, list[dict]]:
        """The preview job of a new version (adopted by the dispatcher, not submitted)."""
        common = JobCommon(name=f"preview v{version['number']}", priority=70,
                           task_timeout_s=1800)
        layer, target = preview_layer(version)
        job = new_job(version["studio_id"], submitted_by, common, JobKind.PREVIEW.value,
                      self.clock(), target)
        return job, compile_tasks(job, [layer])

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

    def may_steer(self, principal: Principal, job: dict) -> None:
        if job["submitted_by"] != principal.user_id and not can(principal.role,
                                                                Action.JOB_MANAGE_ANY):
            raise Forbidden("only the submitter, a supervisor, producer or admin may steer "
                            "this job")

    async def steer(self, principal: Principal, job_id: str, action: str, *,
                    requeue: bool = False) -> dict[str, Any]:
        """Pause, resume, cancel or retry a job (docs/farm.md, "Steering a job")."""
        job = await self.get_doc(principal, job_id)
        self.may_steer(principal, job)
        now = self.clock()
        allowed, target = STEERING[action]
        if job["status"] not in allowed:
            raise Conflict(f"a {job['status']} job cannot be {STEERED[action]}",
                           code="job_state")
        if action == "retry":
            await self._retry_tasks(job_id)
        fields: dict[str, Any] = {"status": target.value, "updated_s": now, "reason": None}
        if action == "retry":  # the jobs it runs after are checked again
            fields["waiting_on"] = job.get("after", [])
        if action == "cancel":
            fields["finished_s"] = now
        # The job first: once it reads cancelled (or paused) no hook publishes for it and
        # no new lease is made; then its tasks, which the dispatcher stops on their nodes.
        if not await self.store.set_job(job_id, fields, only_if_status=allowed):
            if action == "retry":
                await self.wake(job_id)  # its tasks were made to wait all the same
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
                                actor=principal.actor(), target={"type": "job", "id": job_id},
                                details={"requeue": True} if requeue else None)
        shown = await self.get(principal, job_id)
        # The job's counts are the dispatcher's to write, a round after the wake-up above;
        # the answer already shows what the steer did to the tasks.
        shown["counts"] = await self.store.state_counts(job_id)
        return shown

    async def _retry_tasks(self, job_id: str) -> None:
        # Waiting again: each runs once what it waits for (tasks, layers, jobs) succeeded.
        retried = await self.store.set_job_tasks(job_id, ["failed", "dead"], {
            "state": TaskState.WAITING.value, "failures": 0, "not_before_s": 0.0,
            "error": None, "error_class": None})
        if retried == 0:
            raise Conflict("nothing to retry: no failed or dead tasks", code="nothing_to_retry")

    async def set_priority(self, principal: Principal, job_id: str, priority: int) -> dict:
        job = await self.get_doc(principal, job_id)
        self.may_steer(principal, job)
        await self.store.set_job(job_id, {"priority": priority, "updated_s": self.clock()})
        await self.audit.record(job["studio_id"], audited.JOB_CHANGED, actor=principal.actor(),
                                target={"type": "job", "id": job_id},
                                details={"priority": {"from": job["priority"], "to": priority}})
        await self.wake()
        return await self.get(principal, job_id)

    async def outputs(self, principal: Principal, job_id: str) -> list[dict[str, str]]:
        """Every file the job's succeeded tasks stored under its outputs, by task."""
        await self.get_doc(principal, job_id)
        tasks = await self.store.tasks.find(
            {"job_id": job_id, "state": TaskState.SUCCEEDED.value},
            {"outputs": 1, "index": 1}).sort("index", 1).to_list()
        marker = "/outputs/"
        return [{"task_id": t["_id"], "key": key, "path": key.split(marker, 1)[-1]}
                for t in tasks for key in t.get("outputs") or [] if marker in key]

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
