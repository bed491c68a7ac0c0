"""Farm jobs and tasks: submit, watch, steer; node status for ops and TDs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from pipelines.errors import InvalidInput, NotFound
from pipelines.farm.log_keys import log_key
from pipelines.farm.models import FrameRetry, JobPatch, JobStatus, JobSubmit
from pipelines.farm.submit.jobs import JobService
from pipelines.farm.submit.task_actions import TaskActions
from pipelines.farm.submit.task_logs import LogNotFound, TaskLogs, task_prefix
from pipelines.farm.views import (
    JobOut,
    JobPage,
    JobPreviewOut,
    OutputList,
    TaskLogOut,
    TaskOut,
    TaskPage,
)
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action
from serve.contract import errors
from serve.deps import Cursor, require

router = APIRouter(tags=["farm"])
Reader = Annotated[Principal, require(Action.JOB_READ)]
Submitter = Annotated[Principal, require(Action.JOB_SUBMIT)]


def get_jobs(request: Request) -> JobService:
    return request.app.state.platform.jobs


JobsDep = Annotated[JobService, Depends(get_jobs)]
JOB_NOT_FOUND = {404: ["job_not_found"]}
TASK_NOT_FOUND = {404: ["task_not_found"]}


# What compiling any job may refuse (the types' own checks).
SUBMIT_ERRORS = {404: ["version_not_found", "asset_not_found"], 409: ["asset_frozen"],
                 422: ["invalid_frame_range", "bad_template", "invalid_layers",
                       "unknown_prerequisite", "target_not_render", "scene_missing",
                       "scene_unsupported", "command_missing"]}


@router.post("/jobs", status_code=201, response_model=JobOut,
             summary="Submit a job (preview, render; command, layered and command renders "
                     "for TDs)",
             responses=errors(codes={
                 404: SUBMIT_ERRORS[404], 409: SUBMIT_ERRORS[409],
                 422: ["render_missing", "frames_missing", "target_missing", "layers_missing",
                       *SUBMIT_ERRORS[422]]}))
async def submit_job(body: JobSubmit, jobs: JobsDep, who: Submitter) -> dict:
    return await jobs.submit(who, body)


@router.get("/jobs", response_model=JobPage, summary="The studio's jobs, newest first",
            responses=errors(codes={422: ["invalid_cursor"]}))
async def list_jobs(jobs: JobsDep, who: Reader,
                    limit: Annotated[int, Query(ge=1, le=100)] = 50,
                    cursor: Cursor = None,
                    status: JobStatus | None = None,
                    kind: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_-]{0,31}$",
                                                      description="A job type.")] = None,
                    submitter: Annotated[str | None, Query(max_length=64)] = None) -> dict:
    return await jobs.list_jobs(who, limit=limit, cursor=cursor, status=status, kind=kind,
                           submitter=submitter)


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One job with its counts by task "
            "state (and, for renders, frame totals)", responses=errors(codes=JOB_NOT_FOUND))
async def get_job(job_id: str, jobs: JobsDep, who: Reader) -> dict:
    return await jobs.get(who, job_id)


@router.get("/jobs/{job_id}/preview", response_model=JobPreviewOut,
            summary="Presigned URLs of a render job's latest progressive preview and movie",
            responses=errors(codes=JOB_NOT_FOUND))
async def job_preview(job_id: str, request: Request, jobs: JobsDep, who: Reader) -> dict:
    platform = request.app.state.platform
    ttl = platform.settings.download_url_ttl_s
    shown = await jobs.previews(who, job_id)
    for entry in shown.values():
        if entry:
            entry["url"] = await platform.store.presigned_get(entry.pop("key"), ttl)
    return shown | {"expires_in_s": ttl}


@router.get("/jobs/{job_id}/outputs", response_model=OutputList,
            summary="Presigned URLs of every file the job's tasks wrote to `{output}`",
            responses=errors(codes=JOB_NOT_FOUND))
async def job_outputs(job_id: str, request: Request, jobs: JobsDep, who: Reader) -> dict:
    platform = request.app.state.platform
    ttl = platform.settings.download_url_ttl_s
    items = [{"task_id": o["task_id"], "path": o["path"],
              "url": await platform.store.presigned_get(o["key"], ttl)}
             for o in await jobs.outputs(who, job_id)]
    return {"items": items, "expires_in_s": ttl}


@router.patch("/jobs/{job_id}", response_model=JobOut, summary="Change a job's priority",
              responses=errors(codes=JOB_NOT_FOUND))
async def patch_job(job_id: str, body: JobPatch, jobs: JobsDep, who: Reader) -> dict:
    return await jobs.set_priority(who, job_id, body.priority)


STEER_ERRORS = errors(codes=JOB_NOT_FOUND | {409: ["job_state", "nothing_to_retry"],
                                             422: ["requeue_not_pause"]})
_FALSE = ("", "0", "false", "f", "no", "n", "off")


def no_requeue(request: Request) -> None:
    """`requeue` belongs to pause; elsewhere it is refused, not silently ignored."""
    if request.query_params.get("requeue", "false").lower() not in _FALSE:
        raise InvalidInput("`requeue` applies to pause only", code="requeue_not_pause")


@router.post("/jobs/{job_id}/pause", response_model=JobOut, responses=STEER_ERRORS,
             summary="Pause: no new task starts; running ones finish, or are requeued",
             description="With `requeue=true` running tasks are stopped and queued again "
             "without costing an attempt (docs/farm.md, \"Steering a job\").")
async def pause_job(job_id: str, jobs: JobsDep, who: Reader,
                    requeue: Annotated[bool, Query(description="Stop running tasks and "
                                                   "queue them again.")] = False) -> dict:
    return await jobs.steer(who, job_id, "pause", requeue=requeue)


def _steering(action: str) -> Any:
    async def steer(job_id: str, jobs: JobsDep, who: Reader) -> dict:
        return await jobs.steer(who, job_id, action)

    steer.__name__ = f"{action}_job"
    return steer


# One operation per action, so each states its own parameters and a wrong method on
# /jobs/{id}/tasks or /jobs/{id}/preview is a 405, not a 422 for an unknown action.
for _action, _summary in (
        ("resume", "Resume a paused job"),
        ("cancel", "Cancel: leased and running tasks are stopped on their nodes"),
        ("retry", "Retry the failed and dead tasks")):
    router.add_api_route(f"/jobs/{{job_id}}/{_action}", _steering(_action), methods=["POST"],
                         response_model=JobOut, responses=STEER_ERRORS, summary=_summary,
                         dependencies=[Depends(no_requeue)])


@router.get("/jobs/{job_id}/tasks", response_model=TaskPage, summary="A job's tasks in order",
            responses=errors(codes=JOB_NOT_FOUND | {422: ["invalid_cursor"]}))
async def job_tasks(job_id: str, jobs: JobsDep, who: Reader,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100,
                    cursor: Cursor = None) -> dict:
    items, next_cursor = await jobs.tasks(who, job_id, limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


def get_task_actions(request: Request) -> TaskActions:
    return TaskActions(request.app.state.platform.jobs)


ActionsDep = Annotated[TaskActions, Depends(get_task_actions)]


@router.post("/tasks/{task_id}/kill", response_model=TaskOut,
             summary="Stop a running task (it ends failed)",
             responses=errors(codes=TASK_NOT_FOUND | {409: ["task_not_running"]}))
async def kill_task(task_id: str, actions: ActionsDep, who: Reader) -> dict:
    return await actions.kill(who, task_id)


@router.post("/tasks/{task_id}/retry", response_model=TaskOut,
             summary="Run an ended task again (succeeded, failed, dead or skipped)",
             description="It waits for what it depends on again, with a fresh attempt "
             "budget; a completed or failed job runs again. Tasks that depend on it are not "
             "run again.",
             responses=errors(codes=TASK_NOT_FOUND | {409: ["nothing_to_retry", "job_state"]}))
async def retry_task(task_id: str, actions: ActionsDep, who: Reader) -> dict:
    return await actions.retry(who, task_id)


@router.post("/tasks/{task_id}/skip", response_model=TaskOut,
             summary="Skip a task that has not run: it counts as done",
             description="For its job and for the tasks that depend on it. A running task "
             "is killed first; a succeeded one cannot be skipped.",
             responses=errors(codes=TASK_NOT_FOUND | {409: ["task_state"]}))
async def skip_task(task_id: str, actions: ActionsDep, who: Reader) -> dict:
    return await actions.skip(who, task_id)


@router.post("/jobs/{job_id}/frames/retry", response_model=JobOut,
             summary="Run again the ended tasks holding some frames",
             responses=errors(codes=JOB_NOT_FOUND | {409: ["nothing_to_retry", "job_state"],
                                                     422: ["invalid_frame_range"]}))
async def retry_frames(job_id: str, body: FrameRetry, actions: ActionsDep,
                       who: Reader) -> dict:
    return await actions.retry_frames(who, job_id, body.frames)


LOG_ERRORS = errors(codes={404: ["task_not_found", "log_not_found"]})


@router.get("/tasks/{task_id}/log", response_class=StreamingResponse,
            summary="The task's log so far, as text; `follow` streams it as it grows",
            description="The latest attempt's (or `attempt`'s). While the attempt runs, what "
            "its node shipped so far (about a second behind at most); with `follow=true` the "
            "response stays open and carries each new piece until the attempt ends. The "
            "attempt is in `X-Log-Attempt`.",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
                       **LOG_ERRORS})
async def task_log(task_id: str, request: Request, jobs: JobsDep, who: Reader,
                   attempt: Annotated[int | None, Query(ge=1, le=1000)] = None,
                   follow: bool = False) -> StreamingResponse:
    logs = TaskLogs(request.app.state.platform.store, jobs.store)
    task = await jobs.task_doc(who, task_id)
    which = logs.attempt(task, attempt)
    return StreamingResponse(logs.read(task, which, follow),
                             media_type="text/plain; charset=utf-8",
                             headers={"X-Log-Attempt": str(which),
                                      "Cache-Control": "no-store"})


@router.get("/tasks/{task_id}/log/url", response_model=TaskLogOut,
            summary="A presigned URL of an ended attempt's whole log",
            responses=LOG_ERRORS)
async def task_log_url(task_id: str, request: Request, jobs: JobsDep, who: Reader,
                       attempt: Annotated[int | None, Query(ge=1, le=1000)] = None) -> dict:
    platform = request.app.state.platform
    task = await jobs.task_doc(who, task_id)
    which = TaskLogs(platform.store, jobs.store).attempt(task, attempt)
    key = log_key(task_prefix(task, which))
    try:
        await platform.store.stat(key)
    except NotFound:
        raise LogNotFound("that attempt's whole log is stored once it ends; read it so "
                          "far at /log") from None
    url = await platform.store.presigned_get(key, platform.settings.download_url_ttl_s)
    return {"task_id": task_id, "attempt": which, "url": url}
