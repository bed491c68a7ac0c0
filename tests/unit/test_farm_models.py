"""The public shape of a task: "no retry waiting" is null, not the epoch."""

from __future__ import annotations

from pipelines.farm.models import public_task


def task(**fields) -> dict:
    return {"_id": "t1", "job_id": "j1", "index": 0, "state": "ready", "attempt": 0} | fields


def test_a_task_with_no_retry_waiting_shows_none():
    assert public_task(task(not_before_s=0.0))["retry_at"] is None
    assert public_task(task())["retry_at"] is None
    assert public_task(task(not_before_s=1_800_000_000.0))["retry_at"].startswith("2027-01-15")
