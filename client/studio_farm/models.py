"""What the API answers, as typed objects. Field for field the server's response models
(`pipelines/*/views.py`); a test of the server's suite compares the two, so a field renamed
on one side fails there. Unknown fields are kept (a newer server may add some)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Asset(_Out):
    id: str
    name: str
    kind: str
    description: str
    tags: list[str]
    status: str
    owner_id: str
    current_version: int | None
    version_count: int
    created_at: str
    updated_at: str


class Media(_Out):
    mime: str
    family: str
    label: str


class Version(_Out):
    asset_id: str
    number: int
    filename: str
    size: int
    content_type: str
    media: Media
    sha256: str
    uploaded_by: str
    created_at: str
    previews: dict[str, Any]


class LayerDependency(_Out):
    layer: str
    per_frame: bool


class Layer(_Out):
    name: str
    kind: str
    task_count: int
    frames: str | None
    chunk_size: int
    depends_on: list[LayerDependency]


class Job(_Out):
    id: str
    kind: str
    name: str
    status: str
    priority: int
    submitted_by: str
    requirements: dict[str, Any]
    max_attempts: int
    task_timeout_s: float
    task_count: int
    counts: dict[str, int]
    reason: str | None
    bad_nodes: list[str]
    target: dict[str, Any] | None
    render: dict[str, Any] | None
    layers: list[Layer]
    after: list[str]
    waiting_on: list[str]
    created_at: str
    updated_at: str | None
    finished_at: str | None
    eta: dict[str, Any] | None = None  # seconds, low_s, high_s, finishes_at, based_on, layers

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


class Attempt(_Out):
    attempt: int | None
    node_id: str | None
    ok: bool | None
    failure_class: str | None
    exit_code: int | None
    wall_s: float | None
    finished_at: str | None


class Task(_Out):
    id: str
    job_id: str
    index: int
    layer: str | None
    frames: list[int]
    depends_on: list[str]
    waits_for_layers: list[str]
    state: str
    attempt: int
    node_id: str | None
    lease_expires_at: str | None
    progress: float
    last_line: str | None = None
    kind: str | None
    exit_code: int | None
    error_class: str | None
    error: str | None
    log_key: str | None
    outputs: list[str]
    started_at: str | None
    finished_at: str | None
    retry_at: str | None
    metrics: dict[str, Any]
    history: list[Attempt]


class Node(_Out):
    node_id: str
    name: str
    slots: float
    slots_used: float
    gpus: int
    tags: list[str]
    labels: list[str] = []
    state: str = "open"
    reason: str | None = None
    circuit: str
    running_tasks: int
    my_tasks: list[str]
    recent_failures: dict[str, int] = {}
    last_heartbeat_at: str | None
    refused: str | None = None


class JobType(_Out):
    name: str
    title: str
    description: str
    who_may_submit: list[str]
    settings_schema: dict[str, Any]


class Me(_Out):
    user: dict[str, Any]
    studio: dict[str, Any]
    credential: dict[str, Any]
