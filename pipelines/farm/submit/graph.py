"""A job as a graph of layers, compiled into tasks, checked before anything is queued.

A layer runs one kind of task (a command, a render chunk, an assembly...) over its frames
in chunks. It may depend on other layers of the job:

- **whole**: its tasks wait until every task of the other layer succeeded;
- **frame by frame**: each of its chunks waits only for the other layer's chunks that hold
  its frames (comp frame 7 waits for the render chunk with frame 7, not for the shot).

A compiler may also give a layer's tasks one by one (`units`), each waiting for chosen
chunks of another layer: the render type's progressive previews wait for the first 3, 6,
12... chunks.

Task indices are the farm's lease order within a job, and they follow the graph: a task
comes right after the last task it waits for, so a comp chunk is leased as soon as its
render chunk is done rather than after the whole render layer was handed out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import InvalidInput
from pipelines.farm.frames import chunk, format_frames
from pipelines.farm.models import TaskState
from pipelines.farm.submit.render_plan import spread_order

MAX_LAYERS = 64


class BadLayers(InvalidInput):
    code = "invalid_layers"


@dataclass(frozen=True)
class Dependency:
    layer: str
    per_frame: bool = False


@dataclass(frozen=True)
class Unit:
    """One task given by a compiler: its frames and, per layer, the chunks it waits for
    (positions in that layer's lease order)."""

    frames: list[int]
    waits_for: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str  # the task kind a node runs: command, render, assemble, encode, ...
    payload: dict[str, Any]
    frames: list[int] = field(default_factory=list)  # empty: one task without frames
    chunk_size: int = 1
    depends_on: tuple[Dependency, ...] = ()
    requirements: dict[str, Any] | None = None  # None: the job's
    spread: bool = False  # lease chunks first, last, middle, ... (see render_plan)
    units: tuple[Unit, ...] | None = None  # tasks given one by one instead of chunks


def _refuse(layer: str, message: str) -> BadLayers:
    return BadLayers(f"layer {layer!r}: {message}",
                     details=[{"loc": ["body", "layers", layer], "msg": message,
                               "type": "invalid_layer"}])


def ordered(layers: list[Layer]) -> list[Layer]:
    """The layers, each after those it depends on; refuses unknown names and cycles."""
    by_name: dict[str, Layer] = {}
    for layer in layers:
        if layer.name in by_name:
            raise _refuse(layer.name, "two layers have this name")
        by_name[layer.name] = layer
    if not layers or len(layers) > MAX_LAYERS:
        raise BadLayers(f"a job has 1 to {MAX_LAYERS} layers")
    for layer in layers:
        needed = [d.layer for d in layer.depends_on] + list(
            {name for unit in layer.units or () for name in unit.waits_for})
        for name in needed:
            if name not in by_name:
                raise _refuse(layer.name, f"depends on {name!r}, which is not a layer")
            if name == layer.name:
                raise _refuse(layer.name, "depends on itself")
    done: list[Layer] = []
    state: dict[str, str] = {}

    def visit(layer: Layer, path: list[str]) -> None:
        if state.get(layer.name) == "done":
            return
        if state.get(layer.name) == "visiting":
            cycle = path[path.index(layer.name):] + [layer.name]
            raise _refuse(layer.name, "depends on itself through " + " → ".join(cycle))
        state[layer.name] = "visiting"
        for name in [d.layer for d in layer.depends_on] + sorted(
                {n for unit in layer.units or () for n in unit.waits_for}):
            visit(by_name[name], [*path, layer.name])
        state[layer.name] = "done"
        done.append(layer)

    for layer in layers:
        visit(layer, [])
    return done


@dataclass
class _Task:
    layer: Layer
    rank: int  # the layer's place in the submission, for ties
    seq: int  # its place in its layer's lease order
    frames: list[int]
    deps: list[_Task] = field(default_factory=list)
    key: tuple = ()


def _chunks(layer: Layer) -> list[list[int]]:
    if layer.units is not None:
        return [unit.frames for unit in layer.units]
    parts = chunk(layer.frames, layer.chunk_size) if layer.frames else [[]]
    return [parts[i] for i in spread_order(len(parts))] if layer.spread else parts


def compile_tasks(job: dict[str, Any], layers: list[Layer]) -> list[dict[str, Any]]:
    """Task documents for `job`, in lease order, with their dependencies; `job["layers"]`
    gets each layer's summary. Raises BadLayers (422, naming the layer) first."""
    rank = {layer.name: i for i, layer in enumerate(layers)}
    tasks: dict[str, list[_Task]] = {}
    for layer in ordered(layers):
        mine = [_Task(layer, rank[layer.name], seq, frames)
                for seq, frames in enumerate(_chunks(layer))]
        for dep in layer.depends_on:
            if dep.per_frame:
                _per_frame(layer, dep.layer, mine, tasks[dep.layer])
        for task, unit in zip(mine, layer.units or (), strict=False):
            for name, positions in unit.waits_for.items():
                task.deps += [tasks[name][p] for p in positions]
        tasks[layer.name] = mine
    last: dict[str, tuple] = {}  # the latest key of each layer, for whole dependencies
    for name, mine in tasks.items():  # in dependency order: keys of what they wait for first
        for task in mine:
            task.key = _key(task, last)
        last[name] = max(task.key for task in mine)
    everything = sorted((t for layer in layers for t in tasks[layer.name]), key=lambda t: t.key)
    ids = {id(t): f"{job['_id']}-{i:05d}" for i, t in enumerate(everything)}
    job["layers"] = [_summary(layer, tasks[layer.name]) for layer in layers]
    return [_document(job, i, t, ids) for i, t in enumerate(everything)]


def _per_frame(layer: Layer, other: str, mine: list[_Task], theirs: list[_Task]) -> None:
    holder = {frame: task for task in theirs for frame in task.frames}
    if not all(task.frames for task in mine):
        raise _refuse(layer.name, f"has no frames to wait for frame by frame in {other!r}")
    missing = [f for task in mine for f in task.frames if f not in holder]
    if missing:
        raise _refuse(layer.name, f"waits frame by frame for {other!r}, which has no "
                                  f"frame {format_frames(missing)}")
    for task in mine:
        task.deps += list({id(holder[f]): holder[f] for f in task.frames}.values())


def _key(task: _Task, last: dict[str, tuple]) -> tuple:
    """Sorted by: right after the last task it waits for, then layer, then chunk."""
    anchor = max([t.key for t in task.deps] + [last[d.layer] for d in task.layer.depends_on
                                               if not d.per_frame], default=())
    return (*anchor, task.rank, task.seq)


def _summary(layer: Layer, mine: list[_Task]) -> dict[str, Any]:
    return {"name": layer.name, "kind": layer.kind, "task_count": len(mine),
            "frames": format_frames(layer.frames) if layer.frames else None,
            "chunk_size": layer.chunk_size,
            "depends_on": [{"layer": d.layer, "per_frame": d.per_frame}
                           for d in layer.depends_on]}


def _document(job: dict[str, Any], index: int, task: _Task,
              ids: dict[int, str]) -> dict[str, Any]:
    layer = task.layer
    deps = sorted({ids[id(t)] for t in task.deps})
    whole = sorted(d.layer for d in layer.depends_on if not d.per_frame)
    waits = bool(deps or whole or job.get("after"))
    return {
        "_id": ids[id(task)], "job_id": job["_id"], "studio_id": job["studio_id"],
        "kind": layer.kind, "layer": layer.name, "index": index, "frames": task.frames,
        "deps": deps, "wait_layers": whole,
        "state": TaskState.WAITING.value if waits else TaskState.READY.value,
        "attempt": 0, "failures": 0, "not_before_s": 0.0, "payload": layer.payload,
        "requirements": layer.requirements or job["requirements"],
        "timeout_s": job["task_timeout_s"], "created_s": job["created_s"],
        "request_id": job.get("request_id"),
        # For analytics, grouped in the database without reading the jobs.
        "submitted_by": job.get("submitted_by"), "job_kind": job.get("kind"),
    }
