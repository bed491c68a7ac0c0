"""What runs on each farm node: tasks as subprocesses, logs and outputs to storage.

A plain class; `actors/node_agent.py` pins it to its node. Reports to the dispatcher are
retried until delivered, so a dispatcher restart loses no result; outputs are written under
keys that depend only on job and file name, so a re-run overwrites instead of duplicating.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from pipelines.context import request_context
from pipelines.errors import DependencyUnavailable, FarmError
from pipelines.farm.log_keys import attempt_prefix
from pipelines.farm.node.live_log import LiveLog
from pipelines.farm.node.runners import Runner, TaskContext
from pipelines.farm.protocol import (
    Attempt,
    FailureClass,
    Finished,
    Heartbeat,
    Progressed,
    Started,
    TaskFailed,
    TaskSpec,
)
from pipelines.storage import ObjectStore

log = logging.getLogger("farm.agent")

Report = Started | Progressed | Finished


class Reporter(Protocol):
    async def report_many(self, reports: list[Report]) -> None: ...

    async def heartbeat(self, beat: Heartbeat) -> None: ...


def _merged(old: Progressed, new: Progressed) -> Progressed:
    """The newer report, keeping what only the older one said (progress, or last line)."""
    if old.attempt != new.attempt:
        return new
    return new.model_copy(update={
        "progress": old.progress if new.progress is None else new.progress,
        "last_line": old.last_line if new.last_line is None else new.last_line})


class ReportQueue:
    """Reports leave in order, in batches: while one batch travels to the dispatcher the
    next one gathers, so a busy node makes one call per round trip rather than one per
    report, and a quiet node sends each report at once. A batch is retried until delivered
    (the dispatcher may be restarting, and a lost result would run the task again);
    progress is best effort and is dropped rather than retried."""

    def __init__(self, send: Callable[[list[Report]], Awaitable[None]],
                 attempts: int = 60, first_delay_s: float = 0.2, max_delay_s: float = 5.0):
        self.send = send
        self.attempts, self.first_delay_s, self.max_delay_s = (attempts, first_delay_s,
                                                               max_delay_s)
        self.pending: list[Report] = []
        self.in_flight: list[Report] = []
        self.flushing: asyncio.Task | None = None

    def undelivered_results(self) -> list[Attempt]:
        """Tasks that ended but whose result has not reached the dispatcher yet: a
        restarted dispatcher must not take them for lost."""
        return [Attempt(task_id=r.task_id, attempt=r.attempt)
                for r in (*self.in_flight, *self.pending) if isinstance(r, Finished)]

    def put(self, report: Report) -> None:
        if isinstance(report, Progressed):  # only a task's latest progress is worth sending
            for old in self.pending:
                if isinstance(old, Progressed) and old.task_id == report.task_id:
                    report = _merged(old, report)
            self.pending = [r for r in self.pending if not isinstance(r, Progressed)
                            or r.task_id != report.task_id]
        self.pending.append(report)
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self.pending:
            self.in_flight, self.pending = self.pending, []
            try:
                await self._deliver(self.in_flight)
            finally:
                self.in_flight = []

    async def _deliver(self, batch: list[Report]) -> None:
        delay = self.first_delay_s
        for _ in range(self.attempts):
            try:
                await self.send(batch)
                return
            except Exception:  # noqa: BLE001 - the dispatcher may be restarting
                batch = [report for report in batch if not isinstance(report, Progressed)]
                if not batch:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay_s)
        log.error("reports not delivered", extra={"reports": len(batch), "task_ids": [
            report.task_id for report in batch]})


class Slots:
    """The node's slots. The dispatcher may lease a node more tasks than it has slots
    (dispatch ahead): the extra ones wait here, so a slot never idles while a report
    travels to the dispatcher and the next lease travels back.

    Waiters are woken one by one as slots free up, in the order they came (a later, smaller
    task may take slots an earlier, bigger one cannot use yet): with hundreds leased ahead,
    waking every waiter on every release cost more than the tasks themselves."""

    def __init__(self) -> None:
        self.free: float | None = None
        self.capacity = 0.0
        self.waiting: deque[tuple[float, asyncio.Future[None]]] = deque()

    def _fits(self, need: float) -> bool:
        # A task bigger than the node runs alone (once every slot is free) rather than
        # never; the tolerance absorbs the rounding of fractional slots given back.
        assert self.free is not None
        return self.free + 1e-9 >= min(need, self.capacity)

    async def acquire(self, need: float, capacity: float) -> None:
        if self.free is None:
            self.free, self.capacity = capacity, capacity
        # Whatever is free now fits no waiter (a release hands slots to every waiter they
        # fit), so a task it fits takes it at once.
        if self._fits(need):
            self.free -= need
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((need, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():  # granted, then cancelled
                self.release(need)
            else:
                with contextlib.suppress(ValueError):
                    self.waiting.remove((need, granted))
            raise

    def release(self, need: float) -> None:
        self.free = (self.free or 0.0) + need
        kept: deque[tuple[float, asyncio.Future[None]]] = deque()
        while self.waiting and self.free > 1e-9:
            waiter_need, granted = self.waiting.popleft()
            if granted.done():
                continue
            if self._fits(waiter_need):
                self.free -= waiter_need
                granted.set_result(None)
            else:
                kept.append((waiter_need, granted))
        self.waiting.extendleft(reversed(kept))


class NodeAgent:
    def __init__(self, node_id: str, reporter: Reporter, store: ObjectStore, work_dir: Path,
                 runners: dict[str, Runner], clock: Callable[[], float] = time.monotonic,
                 storage_patience_s: float = 300.0):
        self.node_id = node_id
        self.storage_patience_s = storage_patience_s
        self.reporter = reporter
        self.store = store
        self.work_dir = work_dir
        self.runners = runners
        self.clock = clock
        self.tasks: dict[str, tuple[int, asyncio.Task]] = {}
        self.slots = Slots()
        self.reports = ReportQueue(reporter.report_many)

    def running(self) -> list[Attempt]:
        """What this node holds: running or waiting tasks, and ended ones whose result is
        still on its way (so a dispatcher restarted meanwhile keeps their leases until the
        result arrives, rather than requeueing work that is done)."""
        return [Attempt(task_id=task_id, attempt=attempt)
                for task_id, (attempt, _) in self.tasks.items()
                ] + self.reports.undelivered_results()

    async def run_many(self, specs: list[TaskSpec]) -> None:
        for spec in specs:
            await self.run(spec)

    async def run(self, spec: TaskSpec) -> None:
        """Start a task and return at once; its outcome is reported when it ends."""
        current = self.tasks.get(spec.task_id)
        if current and current[0] >= spec.attempt:
            return  # a duplicate delivery of an attempt already running
        if current:
            current[1].cancel()
        self.tasks[spec.task_id] = (spec.attempt, asyncio.create_task(self._execute(spec)))

    async def cancel(self, task_id: str, attempt: int) -> None:
        current = self.tasks.get(task_id)
        if current and current[0] == attempt:
            current[1].cancel()

    async def stop_all(self, timeout_s: float = 10.0) -> int:
        """Stop every task (their process groups with them) before the node goes away:
        processes run in sessions of their own and would outlive the agent otherwise."""
        running = [task for _, task in self.tasks.values()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=timeout_s)
        return len(running)

    async def heartbeat_forever(self, every_s: float = 2.0) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.reporter.heartbeat(Heartbeat(node_id=self.node_id,
                                                        running=self.running()))
            await asyncio.sleep(every_s)

    async def _execute(self, spec: TaskSpec) -> None:
        try:
            with request_context(spec.request_id):  # its log lines carry the submission's
                await self._run(spec)
        finally:
            # Ended, killed while queued or cancelled mid-report: this attempt holds nothing
            # any more (its result, if any, is counted by `running` until delivered).
            if self.tasks.get(spec.task_id, (None,))[0] == spec.attempt:
                del self.tasks[spec.task_id]  # a newer attempt may have taken the slot

    async def _run(self, spec: TaskSpec) -> None:
        try:
            await self.slots.acquire(spec.slots, spec.node_slots)
        except asyncio.CancelledError:  # killed while queued: it never ran
            self.reports.put(Finished.about(spec, self.node_id, ok=False,
                                            failure_class=FailureClass.CANCELLED,
                                            error="killed before it started"))
            return
        workdir = self.work_dir / f"{spec.task_id}-{spec.attempt}"
        workdir.mkdir(parents=True, exist_ok=True)
        live = LiveLog(self.store, attempt_prefix(spec.studio_id, spec.job_id, spec.task_id,
                                                  spec.attempt), workdir / "task.log",
                       lambda line: self.reports.put(Progressed.about(spec, self.node_id,
                                                                      last_line=line)))
        # The log's first line says whose work it is, so ops can follow one id from the
        # request that submitted the job to this attempt on this node.
        live.append(f"# task {spec.task_id} attempt {spec.attempt} on node {self.node_id}, "
                    f"job {spec.job_id}, request {spec.request_id or '-'}\n")
        shipping = asyncio.get_running_loop().create_task(live.ship_forever())
        started = time.monotonic()
        self.reports.put(Started.about(spec, self.node_id))
        log.info("task started", extra={"task_id": spec.task_id, "attempt": spec.attempt})

        async def progress(value: float) -> None:
            if value < 1.0:  # the end is told by the finished report
                self.reports.put(Progressed.about(spec, self.node_id,
                                                  progress=round(value, 4)))

        ctx = TaskContext(spec, workdir, live, progress, started + spec.timeout_s)
        try:
            outcome = await self._outcome(ctx)
        finally:
            shipping.cancel()
            self.slots.release(spec.slots)  # the next queued task starts meanwhile
        outcome["metrics"] = ctx.metrics | {"wall_s": round(time.monotonic() - started, 3)}
        outcome["log_key"] = await live.finish()
        shutil.rmtree(workdir, ignore_errors=True)
        log.info("task ended", extra={"task_id": spec.task_id, "attempt": spec.attempt,
                                      "ok": outcome["ok"],
                                      "failure_class": outcome.get("failure_class")})
        self.reports.put(Finished.about(spec, self.node_id, **outcome))

    async def _outcome(self, ctx: TaskContext) -> dict[str, Any]:
        runner = self.runners.get(ctx.spec.kind)
        try:
            if runner is None:
                raise TaskFailed(f"this node cannot run {ctx.spec.kind} tasks",
                                 failure_class=FailureClass.CRASH)
            async with asyncio.timeout(ctx.spec.timeout_s):
                await runner(ctx)
            outputs = await self._upload_outputs(ctx)  # after the task's time: it is done
            return {"ok": True, "exit_code": 0, "outputs": ctx.stored + outputs,
                    "results": ctx.results}
        except TimeoutError:
            return self._failure(ctx, FailureClass.TIMEOUT,
                                 f"ran past {ctx.spec.timeout_s:g} s")
        except asyncio.CancelledError:
            return self._failure(ctx, FailureClass.CANCELLED, "killed on request")
        except DependencyUnavailable as exc:  # neither the task's fault nor this node's
            return self._failure(ctx, FailureClass.STORAGE, exc.message)
        except FarmError as exc:
            failure = self._failure(ctx, getattr(exc, "failure_class", FailureClass.CRASH),
                                    exc.message, getattr(exc, "exit_code", None))
            return failure | {"oom": bool(getattr(exc, "oom", False))}
        except Exception as exc:  # noqa: BLE001 - any other error is reported, not lost
            log.exception("task crashed on the node")
            return self._failure(ctx, FailureClass.CRASH, f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _failure(ctx: TaskContext, failure_class: str, message: str,
                 exit_code: int | None = None) -> dict[str, Any]:
        ctx.log.append(f"[{failure_class}] {message}\n")
        return {"ok": False, "failure_class": failure_class, "error": message,
                "exit_code": exit_code}

    async def _upload_outputs(self, ctx: TaskContext) -> list[str]:
        keys = []
        root = ctx.workdir / "out"
        for path in ctx.outputs:
            relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
            key = f"{ctx.spec.job_prefix}/outputs/{relative.as_posix()}"
            await self._patiently(self.store.put_file, key, str(path),
                                  "application/octet-stream")
            keys.append(key)
        return keys

    async def _patiently(self, store: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Finished work waits for storage (an outage, a restart) rather than running
        again: retried with growing pauses for up to `storage_patience_s`, while the
        heartbeat keeps the task's lease."""
        pause, deadline = 0.5, self.clock() + self.storage_patience_s
        while True:
            try:
                await store(*args)
                return
            except DependencyUnavailable:
                if self.clock() + pause > deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
