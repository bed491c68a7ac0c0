"""New job documents, and the command template check every command layer gets."""

from __future__ import annotations

import string
import uuid
from typing import Any

from pipelines.context import request_id_var
from pipelines.errors import InvalidInput
from pipelines.farm.models import JobCommon, JobStatus

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


def new_job(studio_id: str, submitted_by: str, common: JobCommon, kind: str, now_s: float,
            target: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "_id": uuid.uuid4().hex, "studio_id": studio_id, "kind": kind, "name": common.name,
        "status": JobStatus.WAITING.value if common.after else JobStatus.QUEUED.value,
        "priority": common.priority, "submitted_by": submitted_by,
        "requirements": common.requirements.model_dump(),
        "max_attempts": common.max_attempts, "task_timeout_s": common.task_timeout_s,
        "task_count": 0, "counts": {}, "created_s": now_s, "updated_s": now_s,
        "target": target, "bad_nodes": [], "after": list(common.after),
        "waiting_on": list(common.after),
        "request_id": request_id_var.get(),  # followed into its tasks, logs and events
    }
