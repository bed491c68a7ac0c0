"""What the dispatcher and the node agents say to each other, typed and versioned.

They run in different processes, often from different installs: a render node joined
with `farm join` runs the agent code installed on that node. So messages cross the wire
as plain dicts carrying `protocol`, and each side reads them with `read_*`, which refuses
another version with a `ProtocolMismatch` that names both versions, instead of an agent
and a dispatcher silently misreading each other.

- `TaskSpec`: dispatcher → agent, one attempt of one task to run.
- `Started`, `Progressed`, `Finished` (`Report`): agent → dispatcher, about one attempt.
- `Heartbeat`: agent → dispatcher every few seconds, with the attempts it holds.
- `Attempt`: one attempt of one task; its number fences every write (a late report of an
  older attempt changes nothing).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from pipelines.errors import FarmError

PROTOCOL_VERSION = 2


class FailureClass(StrEnum):
    CRASH = "crash"          # non-zero exit, killed, out of memory: may work next time
    TIMEOUT = "timeout"      # ran past the task timeout
    BAD_INPUT = "bad_input"  # missing or corrupt input: retrying cannot help
    NODE_LOST = "node_lost"  # the node died or went silent: not the task's fault
    STORAGE = "storage"      # storage stayed away: neither the task's fault nor the node's
    CANCELLED = "cancelled"


class TaskFailed(FarmError):
    """A task ended badly; `failure_class` tells the retry policy what kind of bad."""

    code = "task_failed"

    def __init__(self, message: str, *, failure_class: str = "crash",
                 exit_code: int | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.failure_class = failure_class
        self.exit_code = exit_code

    def __reduce__(self):
        return (_task_failed, (self.message, self.failure_class, self.exit_code))


def _task_failed(message: str, failure_class: str, exit_code: int | None) -> TaskFailed:
    return TaskFailed(message, failure_class=failure_class, exit_code=exit_code)


class ProtocolMismatch(FarmError):
    """The other side speaks another version of this protocol (or none)."""

    code = "protocol_mismatch"

    def __init__(self, what: str, found: Any):
        super().__init__(f"{what} speaks farm protocol {found!r}; this side speaks "
                         f"{PROTOCOL_VERSION}: run the same Studio Farm version on every node")
        self.what, self.found = what, found

    def __reduce__(self):
        return (ProtocolMismatch, (self.what, self.found))


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: int = PROTOCOL_VERSION

    def wire(self) -> dict[str, Any]:
        return self.model_dump()


class Attempt(_Message):
    task_id: str
    attempt: int


class TaskSpec(_Message):
    task_id: str
    job_id: str
    studio_id: str
    kind: str
    attempt: int
    frames: list[int]
    payload: dict[str, Any]
    timeout_s: float
    node_id: str
    slots: float = 1.0
    node_slots: float = 1.0
    request_id: str | None = None  # of the request that submitted the job

    @property
    def job_prefix(self) -> str:
        """Where the job's files live in storage."""
        return f"studios/{self.studio_id}/jobs/{self.job_id}"


class _Report(_Message):
    task_id: str
    job_id: str
    studio_id: str
    kind: str  # the task's kind (preview, render, ...)
    attempt: int
    node_id: str
    request_id: str | None = None

    @classmethod
    def about(cls, spec: TaskSpec, node_id: str, **fields: Any):
        return cls(task_id=spec.task_id, job_id=spec.job_id, studio_id=spec.studio_id,
                   kind=spec.kind, attempt=spec.attempt, node_id=node_id,
                   request_id=spec.request_id, **fields)


class Started(_Report):
    report: Literal["started"] = "started"


class Progressed(_Report):
    """How far a running task is, and the last line it printed (either may be absent)."""

    report: Literal["progress"] = "progress"
    progress: float | None = None
    last_line: str | None = Field(None, max_length=1000)


class Finished(_Report):
    report: Literal["finished"] = "finished"
    ok: bool
    failure_class: FailureClass | None = None
    error: str | None = None
    exit_code: int | None = None
    oom: bool = False
    outputs: list[str] = []
    log_key: str | None = None
    metrics: dict[str, Any] = {}
    # What the kind's runner made for its publisher: `previews`, a `movie`, a `preview`.
    results: dict[str, Any] = {}


Report = Annotated[Started | Progressed | Finished, Field(discriminator="report")]


class Heartbeat(_Message):
    node_id: str
    running: list[Attempt]


_REPORTS: TypeAdapter[list[Report]] = TypeAdapter(list[Report])
_SPECS: TypeAdapter[list[TaskSpec]] = TypeAdapter(list[TaskSpec])
_ATTEMPTS: TypeAdapter[list[Attempt]] = TypeAdapter(list[Attempt])
_HEARTBEAT: TypeAdapter[Heartbeat] = TypeAdapter(Heartbeat)


def _read(adapter: TypeAdapter, what: str, wire: Any, items: list[Any]):
    for item in items:
        found = item.get("protocol") if isinstance(item, dict) else None
        if found != PROTOCOL_VERSION:
            raise ProtocolMismatch(what, found)
    try:
        return adapter.validate_python(wire)
    except ValidationError as exc:  # same version, another shape: said plainly, not a 500
        raise ProtocolMismatch(what, f"{PROTOCOL_VERSION}, malformed "
                                     f"({exc.errors()[0]['msg']})") from None


def read_reports(wire: list[Any]) -> list[Started | Progressed | Finished]:
    return _read(_REPORTS, "a node agent", wire, list(wire))


def read_specs(wire: list[Any]) -> list[TaskSpec]:
    return _read(_SPECS, "the dispatcher", wire, list(wire))


def read_attempts(wire: list[Any]) -> list[Attempt]:
    return _read(_ATTEMPTS, "a node agent", wire, list(wire))


def read_heartbeat(wire: Any) -> Heartbeat:
    return _read(_HEARTBEAT, "a node agent", wire, [wire])
