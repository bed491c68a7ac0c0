"""How a node runs one task of each kind. Failures carry a `failure_class`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipelines.farm.protocol import TaskFailed, TaskSpec
from pipelines.media.runner import run_tool

Progress = Callable[[float], Awaitable[None]]


class LogSink(Protocol):
    """Where a runner writes the task's log (a LiveLog on nodes; a list in tests)."""

    def append(self, text: str) -> None: ...

    def extend(self, texts: Iterable[str]) -> None: ...


@dataclass
class TaskContext:
    spec: TaskSpec
    workdir: Path
    log: LogSink
    progress: Progress
    deadline: float
    outputs: list[Path] = field(default_factory=list)  # files the agent stores as outputs
    stored: list[str] = field(default_factory=list)  # keys the runner stored itself
    metrics: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)  # for the kind's publisher

    def remaining_s(self) -> float:
        return max(0.1, self.deadline - time.monotonic())


class Runner(Protocol):
    async def __call__(self, ctx: TaskContext) -> None: ...


def _writer(log: LogSink) -> Callable[[bytes], None]:
    write = getattr(log, "write", None)  # a LiveLog takes bytes as they are
    return write if write is not None else (
        lambda data: log.append(data.decode("utf-8", "replace")))


def _expand(argv: list[str], values: dict[str, Any]) -> list[str]:
    return [arg.format(**values) for arg in argv]


async def run_command(ctx: TaskContext) -> None:
    """A command template over the task's frames: once per frame when it names `{frame}`,
    else once for the chunk (`{first}`..`{last}`). Outputs go to `{output}`."""
    argv: list[str] = ctx.spec.payload["argv"]
    frames: list[int] = ctx.spec.frames or [0]
    output = ctx.workdir / "out"
    output.mkdir(parents=True, exist_ok=True)
    per_frame = any("{frame" in arg for arg in argv)
    runs = [[f] for f in frames] if per_frame else [frames]
    for done, chunk_frames in enumerate(runs, start=1):
        values = {"frame": chunk_frames[0], "first": chunk_frames[0], "last": chunk_frames[-1],
                  "output": str(output)}
        expanded = _expand(argv, values)
        ctx.log.append(f"$ {' '.join(expanded)}\n")
        # stdout and stderr go to the log as they come, never held whole: a task may
        # print gigabytes.
        result = await run_tool(expanded, timeout_s=ctx.remaining_s(), memory_bytes=None,
                                cpu_seconds=None, cwd=ctx.workdir, check=False,
                                on_stdout=_writer(ctx.log), on_stderr=_writer(ctx.log),
                                keep_stdout=False)
        ctx.log.append(f"\n[exit {result.returncode}, {result.wall_s:.2f}s]\n")
        if result.returncode != 0:
            raise TaskFailed(f"{expanded[0]} exited {result.returncode}",
                             exit_code=result.returncode, failure_class="crash")
        await ctx.progress(done / len(runs))
    ctx.outputs.extend(sorted(p for p in output.rglob("*") if p.is_file()))
