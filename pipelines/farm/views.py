"""What the API answers about jobs, tasks and farm nodes (shared with the SDK).

`public_job` and `public_task` in models.py make these shapes from stored documents.
Times are ISO 8601 strings in UTC.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.farm.models import JobStatus, TaskState

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"},
                                 examples=["2026-05-14T09:30:00.000+00:00"])]


class RequirementsOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    slots: float
    gpus: int
    memory_bytes: int
    tags: list[str]


class LayerDependencyOut(BaseModel):
    layer: str
    per_frame: bool


class LayerOut(BaseModel):
    name: str
    kind: str = Field(description="The kind of its tasks (command, render, encode, ...).")
    task_count: int
    frames: str | None
    chunk_size: int
    depends_on: list[LayerDependencyOut]


class EtaOut(BaseModel):
    seconds: float | None = Field(description="Left, at the rate the job runs now; null while "
                                  "a layer with work left has under 3 finished tasks, or "
                                  "nothing of the job runs.")
    low_s: float | None = Field(description="Two standard deviations below.")
    high_s: float | None = Field(description="Two standard deviations above.")
    finishes_at: Timestamp | None
    based_on: int = Field(description="Finished tasks the estimate is drawn from.")
    layers: dict[str, float | None] = Field(description="Seconds left per layer, at the rate "
                                            "each runs now; null where unknown.")


class JobOut(BaseModel):
    id: str
    kind: str = Field(description="The job type (`GET /job-types`).")
    name: str
    status: JobStatus
    priority: int
    submitted_by: str
    requirements: RequirementsOut
    max_attempts: int
    task_timeout_s: float
    task_count: int
    counts: dict[str, int] = Field(description="Tasks by state.")
    reason: str | None = Field(description="Why the job failed, when it did.")
    bad_nodes: list[str]
    target: dict[str, Any] | None = Field(description="What the job works on (asset and "
                                                      "version; for renders, the scene).")
    render: dict[str, Any] | None = Field(description="Render jobs: the render options, "
                                          "frames, progressive preview and totals.")
    layers: list[LayerOut] = Field(description="The job's graph: its layers in submission "
                                               "order.")
    after: list[str] = Field(description="Jobs it waits for.")
    waiting_on: list[str] = Field(description="Of those, the ones not completed yet.")
    created_at: Timestamp
    updated_at: Timestamp | None
    finished_at: Timestamp | None
    eta: EtaOut | None = Field(description="How long it has left, from its finished tasks' "
                               "run times; null until some finished (docs/farm.md, ETA).")


class OutputOut(BaseModel):
    task_id: str
    path: str = Field(description="Where the task wrote it, under `{output}`.")
    url: str = Field(description="Presigned GET URL.")


class OutputList(BaseModel):
    items: list[OutputOut]
    expires_in_s: int


class JobTypeOut(BaseModel):
    name: str
    title: str
    description: str
    who_may_submit: list[str] = Field(description="Roles that may submit it.")
    settings_schema: dict[str, Any] = Field(description="JSON Schema of `settings`.")


class JobTypeList(BaseModel):
    items: list[JobTypeOut]


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class AttemptOut(BaseModel):
    attempt: int | None
    node_id: str | None
    ok: bool | None
    failure_class: str | None
    exit_code: int | None
    wall_s: float | None
    finished_at: Timestamp | None


class TaskOut(BaseModel):
    id: str
    job_id: str
    index: int
    layer: str | None
    frames: list[int]
    depends_on: list[str] = Field(description="Tasks it waits for.")
    waits_for_layers: list[str] = Field(description="Layers of its job it waits for whole.")
    state: TaskState
    attempt: int
    node_id: str | None
    lease_expires_at: Timestamp | None
    progress: float
    last_line: str | None = Field(description="The last line the task printed (while it "
                                  "runs: at most a second old).")
    kind: str | None
    exit_code: int | None
    error_class: str | None
    error: str | None
    log_key: str | None
    outputs: list[Any]
    started_at: Timestamp | None
    finished_at: Timestamp | None
    retry_at: Timestamp | None = Field(description="When a failed attempt runs again; null "
                                                   "when no retry is waiting.")
    metrics: dict[str, Any]
    history: list[AttemptOut] = Field(description="Every finished attempt, oldest first.")


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None


class TaskLogOut(BaseModel):
    task_id: str
    attempt: int
    url: str = Field(description="Presigned GET URL of the attempt's whole log.")


class ProgressivePreview(BaseModel):
    url: str
    frames: int = Field(description="Frames the preview shows.")
    of: int = Field(description="Frames of the whole job.")


class PublishedMovie(BaseModel):
    model_config = ConfigDict(extra="allow")
    asset_id: str
    version: int
    url: str


class JobPreviewOut(BaseModel):
    progressive: ProgressivePreview | None
    movie: PublishedMovie | None
    expires_in_s: int


class NodeOut(BaseModel):
    node_id: str
    name: str
    slots: float
    slots_used: float
    gpus: int
    tags: list[str] = Field(description="What the node advertises (`farm join --tags`).")
    labels: list[str] = Field([], description="Tags people gave it (PATCH); jobs may "
                                             "require them like its own.")
    state: Literal["open", "locked", "draining", "drained", "refused"] = Field(
        "open", description="open: gets work; locked: gets nothing new, running tasks "
        "finish; draining: locked until idle, then drained; refused: see `refused`.")
    reason: str | None = Field(None, description="Why it was locked or drained.")
    circuit: str = Field(description="closed (gets work), open or half_open.")
    running_tasks: int
    my_tasks: list[str] = Field(description="Running tasks of the caller's studio.")
    recent_failures: dict[str, int] = Field(
        {}, description="Failed attempts on it in the last hour, by failure class.")
    last_heartbeat_at: Timestamp | None
    refused: str | None = Field(None, description="Why this node gets no work: it speaks "
                                                  "another farm protocol version.")


class NodeMode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=200, description="Shown in the node list.")


class NodeLabels(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: list[str] = Field(max_length=32, description="The node's labels, replacing "
                              "those it had; written as job tags are.")


class NodeList(BaseModel):
    items: list[NodeOut]
    next_cursor: str | None = Field(None, description="Always null: every node is on one "
                                                      "page.")
