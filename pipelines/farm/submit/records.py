"""New job and task documents, and the command template check they rely on."""

from __future__ import annotations

import string
import uuid
from typing import Any

from pipelines.errors import InvalidInput
from pipelines.farm.models import JobStatus, JobSubmit, TaskState

PLACEHOLDERS = frozenset({"frame", "first", "last", "output"})


def check_template(argv: list[str], allowed: set[str] | frozenset[str] = PLACEHOLDERS) -> None:
    """Only the documented placeholders; anything else is a typo caught before the farm."""
    for arg in argv:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(arg) if name is not None}
        except ValueError as exc:
            raise InvalidInput(f"bad placeholder in {arg!r}: {exc}", code="bad_template") from exc
        unknown = names - allowed
        if unknown:
            raise InvalidInput(f"unknown placeholders {sorted(unknown)}; use "
                               f"{sorted(allowed)}", code="bad_template")


def new_task(job: dict[str, Any], index: int, payload: dict[str, Any],
             frames: list[int] | None = None, deps: list[str] | None = None, *,
             kind: str | None = None,
             requirements: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "_id": f"{job['_id']}-{index:05d}", "job_id": job["_id"], "studio_id": job["studio_id"],
        "kind": kind or job["kind"], "index": index, "frames": frames or [],
        "deps": deps or [], "state": TaskState.WAITING.value if deps else TaskState.READY.value,
        "attempt": 0, "failures": 0, "not_before_s": 0.0, "payload": payload,
        "requirements": requirements or job["requirements"],
        "timeout_s": job["task_timeout_s"], "created_s": job["created_s"],
    }


def new_job(studio_id: str, submitted_by: str, body: JobSubmit, now_s: float,
            target: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "_id": uuid.uuid4().hex, "studio_id": studio_id, "kind": body.kind, "name": body.name,
        "status": JobStatus.QUEUED.value, "priority": body.priority,
        "submitted_by": submitted_by, "requirements": body.requirements.model_dump(),
        "max_attempts": body.max_attempts, "task_timeout_s": body.task_timeout_s,
        "task_count": 0, "counts": {}, "created_s": now_s, "updated_s": now_s,
        "target": target, "bad_nodes": [],
    }
