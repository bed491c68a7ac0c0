"""Jobs and tasks: the farm's model, request bodies and public shapes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pipelines.clock import iso
from pipelines.numbers import MAX_INT64, Bool, Float, Int, VersionNumber
from pipelines.schema import given, when
from pipelines.text import JobName


class JobKind(StrEnum):
    """The job types `POST /jobs` takes with their fields inline; every registered type
    (these, `encode` and a studio's own) is also at `POST /job-types/{type}/jobs`."""

    PREVIEW = "preview"
    COMMAND = "command"
    RENDER = "render"
    LAYERED = "layered"


class JobStatus(StrEnum):
    WAITING = "waiting"  # for the jobs it runs `after`
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskState(StrEnum):
    WAITING = "waiting"
    READY = "ready"
    PAUSED = "paused"  # its job is paused: never leased, whatever a round read of the job
    LEASED = "leased"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # set aside by a person: done, for its job and what depends on it


ACTIVE = (TaskState.LEASED.value, TaskState.RUNNING.value)
# What a dependency, a layer or a job counts as done.
DONE = (TaskState.SUCCEEDED.value, TaskState.SKIPPED.value)
FINAL_JOB = (JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)
# A tag is also a node's Ray label name (`farm join --tag`), which ends with a letter or digit.
TAG_PATTERN = r"^[a-z0-9]([a-z0-9_.-]{0,38}[a-z0-9])?$"
Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]


def _no_nul(arg: str) -> str:
    # The OS ends an argument at a NUL byte: such a task could never start, on any node.
    if "\x00" in arg:
        raise ValueError("a command argument cannot hold a NUL byte")
    return arg


Arg = Annotated[str, StringConstraints(max_length=4096), AfterValidator(_no_nul),
                Field(json_schema_extra={"pattern": r"^[^\x00]*$"})]
# `1-100x2,120`: frames, ranges and stepped ranges (pipelines.farm.frames); that ranges go
# upwards and hold at most 100,000 frames is checked in code (422 invalid_frame_range).
_FRAME_PART = r"\s*-?\d+(?:--?\d+(?:x\d+)?)?\s*"
FRAMES_PATTERN = rf"^{_FRAME_PART}(?:,{_FRAME_PART})*$"
Frames = Annotated[str, StringConstraints(max_length=2000), Field(
    json_schema_extra={"pattern": FRAMES_PATTERN}, examples=["1-48"],
    description="Frames `5`, ranges `1-48` and stepped ranges `1-100x2`, comma-separated; "
                "a range goes upwards, and a job has at most 100,000 frames "
                "(422 `invalid_frame_range`).")]


class Requirements(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slots: Float = Field(1.0, gt=0, le=64, description="Farm slots (CPU share) per task.")
    gpus: Int = Field(0, ge=0, le=8)
    memory_bytes: Int = Field(0, ge=0, le=MAX_INT64)
    tags: list[Tag] = Field(default_factory=list, max_length=10)


class FrameRetry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    frames: Annotated[str, StringConstraints(min_length=1, max_length=1000)] = Field(
        description="Frames whose ended tasks run again: `1001-1010`, `5,7,9`, `1-100x10`.",
        examples=["1001-1010"])


class VersionRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asset_id: Annotated[str, StringConstraints(max_length=64)]
    version: VersionNumber


class RenderOptions(BaseModel):
    """What a render job renders and how; frames and chunk size are the job's own fields."""

    # Blender (the default renderer) needs a scene; the command renderer brings its own.
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "if": {"required": ["renderer"], "properties": {"renderer": {"const": "command"}}},
        "else": given("scene")})
    renderer: Literal["blender", "command"] = "blender"
    scene: VersionRef | None = Field(None, description="The scene, an asset version.")
    target_asset_id: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="The `render` asset that gets the movie as a new version.")
    samples: Int = Field(0, ge=0, le=65536, description="Cycles samples; 0: the scene's.")
    resolution_percent: Int = Field(100, ge=1, le=1000)
    output_format: Literal["PNG", "OPEN_EXR", "JPEG"] = "PNG"
    device: Literal["cpu", "auto", "gpu"] = Field(
        "cpu", description="cpu; auto: a GPU when the node has one; gpu: GPU nodes only.")
    fps: Float | None = Field(None, gt=0, le=1000,
                              description="Movie frame rate; unset: the scene's (24 for "
                                          "the command renderer).")
    progressive: Bool = Field(True, description="Low-resolution previews while rendering.")


_COMMAND_RENDER: dict[str, Any] = {"properties": {"render": {
    "required": ["renderer"], "properties": {"renderer": {"const": "command"}}}}}
_JOB_EXAMPLES: list[Any] = [
    {"kind": "preview", "asset_id": "5f0c2d9a", "version": 3},
    {"kind": "render", "name": "sh010 lighting", "frames": "1-48", "chunk_size": 8,
     "render": {"scene": {"asset_id": "a31be0f7", "version": 2},
                "target_asset_id": "c7d1e2f3", "samples": 64}},
    {"kind": "command", "name": "cache sim", "command": ["simtool", "--frame", "{frame}"],
     "frames": "1-10"},
    {"kind": "layered", "name": "sh010 comp", "layers": [
        {"name": "comp", "command": ["comptool", "{frame}"], "frames": "1001-1048"},
        {"name": "dailies", "command": ["mkdailies", "{first}", "{last}"],
         "frames": "1001-1048", "chunk_size": 48, "depends_on": ["comp"]}]},
]


JobId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
LayerName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]


class JobCommon(BaseModel):
    """What every job has, whatever its type."""

    model_config = ConfigDict(extra="forbid")
    name: JobName = "job"
    priority: Int = Field(50, ge=0, le=100)
    requirements: Requirements = Field(default_factory=Requirements)  # type: ignore[arg-type]
    max_attempts: Int = Field(3, ge=1, le=10)
    task_timeout_s: Float = Field(3600, gt=0, le=7 * 24 * 3600)
    after: list[JobId] = Field(default_factory=list, max_length=50, description=(
        "Jobs of the studio this one waits for: it is `waiting` until they all completed, "
        "and fails if one of them fails or is cancelled."))


class LayerDependency(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layer: LayerName
    per_frame: Bool = Field(False, description="Each chunk waits only for the chunks of "
                                               "`layer` that hold its frames.")


class LayerSubmit(BaseModel):
    """A command over frames in chunks; it may wait for other layers, whole or frame by
    frame. Placeholders as in command jobs."""

    model_config = ConfigDict(extra="forbid")
    name: LayerName
    command: list[Arg] = Field(min_length=1, max_length=256)
    frames: Frames | None = Field(None, description="Unset: one task without frames.")
    chunk_size: Int = Field(1, ge=1, le=10_000)
    requirements: Requirements | None = None
    depends_on: list[LayerName | LayerDependency] = Field(
        default_factory=list, max_length=16,
        description="A layer name (wait for all of it) or `{layer, per_frame}`.")


class JobSubmit(JobCommon):
    """One body for the inline kinds; what each kind needs is stated per kind (if/then)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "allOf": [
            when("kind", "preview", given("asset_id", "version")),
            when("kind", "command", given("command")),
            when("kind", "render", given("render", "frames")),
            when("kind", "layered", given("layers")),
            {"if": {"required": ["kind", "render"], "properties": {
                "kind": {"const": "render"}} | _COMMAND_RENDER["properties"]},
             "then": given("command")},
        ],
        "examples": _JOB_EXAMPLES})
    kind: Literal["preview", "command", "render", "layered"]
    # layered jobs
    layers: list[LayerSubmit] | None = Field(None, min_length=1, max_length=64)
    # command jobs
    command: list[Arg] | None = Field(None, min_length=1, max_length=256)
    frames: Frames | None = None
    chunk_size: Int = Field(1, ge=1, le=10_000)
    # preview jobs
    asset_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    version: VersionNumber | None = None
    # render jobs (frames, chunk_size and, for the command renderer, command as above)
    render: RenderOptions | None = None


class TypedJobSubmit(JobCommon):
    """A job of a registered type: `settings` as the type's schema says
    (`GET /job-types`)."""

    settings: dict[str, Any] = Field(default_factory=dict)


class JobPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: Int = Field(ge=0, le=100)


def public_job(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"], "kind": doc["kind"], "name": doc["name"], "status": doc["status"],
        "priority": doc["priority"], "submitted_by": doc["submitted_by"],
        "requirements": doc["requirements"], "max_attempts": doc["max_attempts"],
        "task_timeout_s": doc["task_timeout_s"], "task_count": doc["task_count"],
        "counts": doc.get("counts", {}), "reason": doc.get("reason"),
        "bad_nodes": doc.get("bad_nodes", []), "target": doc.get("target"),
        "layers": doc.get("layers", []), "after": doc.get("after", []),
        "waiting_on": doc.get("waiting_on", []),
        "render": {k: v for k, v in doc["render"].items() if k != "preview_frames"}
        if doc.get("render") else None,
        "created_at": iso(doc["created_s"]), "updated_at": iso(doc.get("updated_s")),
        "finished_at": iso(doc.get("finished_s")),
        "eta": _eta(doc),
    }


def _eta(doc: dict[str, Any]) -> dict[str, Any] | None:
    eta = doc.get("eta")
    if not eta:
        return None
    ends = None if eta["seconds"] is None else iso(doc.get("updated_s", 0.0) + eta["seconds"])
    return eta | {"finishes_at": ends}


def public_attempt(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry.get(k) for k in ("attempt", "node_id", "ok", "failure_class",
                                      "exit_code", "wall_s")} | {
        "finished_at": iso(entry.get("finished_s"))}


def public_task(doc: dict[str, Any], history: list[dict] | None = None) -> dict[str, Any]:
    return {
        "id": doc["_id"], "job_id": doc["job_id"], "index": doc["index"],
        "layer": doc.get("layer"),
        "frames": doc.get("frames", []), "depends_on": doc.get("deps", []),
        "waits_for_layers": doc.get("wait_layers", []),
        "state": doc["state"], "attempt": doc["attempt"], "node_id": doc.get("node_id"),
        "lease_expires_at": iso(doc.get("lease_expires_s")), "progress": doc.get("progress", 0.0),
        "last_line": doc.get("last_line"),
        "kind": doc.get("kind"), "exit_code": doc.get("exit_code"),
        "error_class": doc.get("error_class"),
        "error": doc.get("error"), "log_key": doc.get("log_key"),
        "outputs": doc.get("outputs", []), "started_at": iso(doc.get("started_s")),
        "finished_at": iso(doc.get("finished_s")),
        "retry_at": iso(doc.get("not_before_s") or None),  # 0: no retry is waiting
        "metrics": doc.get("metrics", {}),
        "history": [public_attempt(h) for h in history or []],
    }
