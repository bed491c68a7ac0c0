"""Where a task attempt's log lives in object storage, under its job's prefix; the node
writes there (pipelines/farm/node/live_log.py), the API reads (submit/task_logs.py):

    logs/<task>/attempt-<n>.live/<seq>   chunks shipped while the attempt runs
    logs/<task>/attempt-<n>.log          the whole log, once it ended (the chunks go then)
"""

from __future__ import annotations


def attempt_prefix(studio_id: str, job_id: str, task_id: str, attempt: int) -> str:
    return f"studios/{studio_id}/jobs/{job_id}/logs/{task_id}/attempt-{attempt}"


def log_key(prefix: str) -> str:
    return f"{prefix}.log"


def chunk_prefix(prefix: str) -> str:
    return f"{prefix}.live/"
