"""What happens to a task when its node reports: started, succeeded, failed or lost."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from pymongo import UpdateOne

from pipelines.context import request_context
from pipelines.events.log import EventLog
from pipelines.farm.control.metrics import FarmMetrics
from pipelines.farm.control.policy import BadNodes, CircuitBreakers, RetryPolicy
from pipelines.farm.control.progress import JobTracker
from pipelines.farm.models import ACTIVE, TaskState
from pipelines.farm.protocol import FailureClass, Finished, Started, TaskFailed
from pipelines.farm.store import FarmStore

log = logging.getLogger("farm.dispatcher")
SuccessHook = Callable[[dict, dict, Finished], Awaitable[None]]
BiggerNode = Callable[[str, dict], int | None]  # (node, requirements) → memory of one
AnotherTakes = Callable[[dict, set[str]], bool]  # (requirements, barred) → a node is left
Layers = Mapping[str, str | None]  # task id → its layer
_NO_LAYERS: Layers = {}
NODE_FAULTS = (FailureClass.CRASH.value, FailureClass.TIMEOUT.value)


class OutcomeHandler:
    def __init__(self, store: FarmStore, events: EventLog, jobs: JobTracker,
                 retry: RetryPolicy, circuits: CircuitBreakers, bad_nodes: BadNodes,
                 hooks: dict[str, SuccessHook], clock: Callable[[], float] = time.time,
                 bigger_node: BiggerNode = lambda node_id, requirements: None,
                 another_takes: AnotherTakes = lambda requirements, barred: True,
                 metrics: FarmMetrics | None = None):
        self.store, self.events, self.jobs = store, events, jobs
        self.retry, self.circuits, self.bad_nodes = retry, circuits, bad_nodes
        self.hooks = hooks
        self.clock = clock
        self.bigger_node = bigger_node
        self.another_takes = another_takes
        self.metrics = metrics or FarmMetrics()

    @staticmethod
    def _fence(report: Started | Finished, states=ACTIVE) -> dict[str, Any]:
        return {"_id": report.task_id, "attempt": report.attempt,
                "state": {"$in": list(states)}}

    @staticmethod
    def _fence_in(report: Started | Finished, state: str) -> dict[str, Any]:
        """For the batched hot path: a state by equality, which the embedded server matches
        in SQL (an `$in` costs it about as much as the write itself)."""
        return {"_id": report.task_id, "attempt": report.attempt, "state": state}

    def _entry(self, report: Finished) -> dict[str, Any]:
        """One line of the task's attempt history, for TDs and for the tests."""
        return {"task_id": report.task_id, "job_id": report.job_id,
                "studio_id": report.studio_id, "kind": report.kind,
                "attempt": report.attempt, "node_id": report.node_id, "ok": report.ok,
                "failure_class": report.failure_class and report.failure_class.value,
                "exit_code": report.exit_code, "finished_s": self.clock(),
                "wall_s": report.metrics.get("wall_s")}

    async def started(self, reports: list[Started],
                      ending: AbstractSet[tuple[str, int]] = frozenset(),
                      layers: Layers = _NO_LAYERS) -> None:
        """Leased → running, for a whole round's reports in one round trip. An attempt
        (task, attempt) in `ending` succeeded in the same batch: its success write records
        the start too. `layers`: the reported tasks' layers, where known (for the counts)."""
        now = self.clock()
        # One update of many per attempt number (nearly always one): the same fields for
        # all, cheaper per task than a bulk write of single updates.
        by_attempt: dict[int, list[Started]] = {}
        for report in reports:
            if (report.task_id, report.attempt) not in ending:
                by_attempt.setdefault(report.attempt, []).append(report)
        for attempt, batch in by_attempt.items():
            held = await self.store.set_tasks(
                [r.task_id for r in batch], {"attempt": attempt, "state": TaskState.LEASED.value},
                {"state": TaskState.RUNNING.value, "started_s": now})
            for report in batch:
                if held == len(batch):  # each moved; otherwise which did is not known
                    self.jobs.moved(report.job_id, layers.get(report.task_id),
                                    TaskState.LEASED.value, TaskState.RUNNING.value)
                else:
                    self.jobs.touch(report.job_id)
        by_job: dict[str, list[Started]] = {}
        for report in reports:
            by_job.setdefault(report.job_id, []).append(report)
        for job_id, started in by_job.items():
            # One event per job and round, listing the tasks: a 10,000-task job must not
            # flood its room with 10,000 events.
            with request_context(started[0].request_id):
                await self.events.append(started[0].studio_id, "task.started",
                                         f"job:{job_id}", {
                    "job_id": job_id, "tasks": [{"task_id": r.task_id, "attempt": r.attempt,
                                                 "node_id": r.node_id} for r in started]})

    async def succeeded(self, reports: list[Finished],
                        started: AbstractSet[tuple[str, int]] = frozenset(),
                        layers: Layers = _NO_LAYERS) -> None:
        """Active → succeeded in one round trip (two when a start went unseen); kinds with a
        hook go one by one. `started`: attempts whose start came in the same batch and was
        not written: they are still leased. `layers`: as for `started`."""
        plain = [r for r in reports if r.kind not in self.hooks]
        now = self.clock()

        def success(report: Finished, state: str) -> UpdateOne:
            fields = self._success(report, now)
            if (report.task_id, report.attempt) in started:
                fields["started_s"] = now
            return UpdateOne(self._fence_in(report, state), {"$set": fields})

        def likely(report: Finished, otherwise: bool = False) -> str:
            """Leased if its start came in this batch (so not written), else running;
            `otherwise`: the other of the two."""
            leased = ((report.task_id, report.attempt) in started) != otherwise
            return TaskState.LEASED.value if leased else TaskState.RUNNING.value

        held = await self.store.apply([success(r, likely(r)) for r in plain])
        if held < len(plain):  # some were in the other state (a start unseen or sent
            # twice), or are stale: those that succeeded above no longer match either
            await self.store.apply([success(r, likely(r, otherwise=True)) for r in plain])
        await self.store.record_attempts([self._entry(r) for r in plain])
        for report in plain:
            self._credit(report)
            if held == len(plain):  # each moved from the state its fence named
                self.jobs.moved(report.job_id, layers.get(report.task_id), likely(report),
                                TaskState.SUCCEEDED.value, report.metrics.get("wall_s"))
            else:
                self.jobs.touch(report.job_id)
        for report in reports:
            if report.kind in self.hooks:
                with request_context(report.request_id):
                    await self._succeeded(report)

    @staticmethod
    def _success(report: Finished, now: float) -> dict[str, Any]:
        return {"state": TaskState.SUCCEEDED.value, "progress": 1.0, "finished_s": now,
                "exit_code": report.exit_code or 0, "outputs": report.outputs,
                "log_key": report.log_key, "metrics": report.metrics,
                "error": None, "error_class": None}

    def _credit(self, report: Finished) -> None:
        self.metrics.ended(True, None)
        self.circuits.record_success(report.node_id)
        self.circuits.record_success((report.node_id, report.kind))
        self.jobs.task_succeeded()

    async def failed(self, report: Finished) -> None:
        with request_context(report.request_id):
            await self._failed(report)

    async def _succeeded(self, payload: Finished) -> None:
        """A kind with a hook (publishing) is marked succeeded only after its hook ran: a
        dispatcher that dies in between leaves the task active, so it is requeued and run
        again (hooks are idempotent) instead of ending complete without its publication."""
        found = await self._active(payload)
        if found is None or found[1]["status"] == "cancelled":
            return  # a stale attempt, or a cancelled job: nothing is published
        task, job = found
        try:
            await self.hooks[payload.kind](job, task, payload)
        except TaskFailed as exc:  # e.g. the publication was refused, or storage is away
            await self._failed(payload.model_copy(update={
                "ok": False, "failure_class": FailureClass(exc.failure_class),
                "error": exc.message, "exit_code": None}), blame_node=False)
            return
        except Exception:  # noqa: BLE001 - the round's other reports must go on
            log.exception("success hook failed", extra={"task_id": task["_id"]})
        if await self.store.set_task(self._fence(payload),
                                     self._success(payload, self.clock())):
            await self.store.record_attempt(self._entry(payload))
            self._credit(payload)
            self.jobs.touch(payload.job_id)  # from leased or running: not known which

    async def _active(self, report: Finished) -> tuple[dict, dict] | None:
        """The task, if this attempt of it is still active, and its job."""
        task = await self.store.tasks.find_one(self._fence(report))
        job = await self.store.job(report.job_id) if task else None
        return (task, job) if task is not None and job is not None else None

    async def _failed(self, payload: Finished, blame_node: bool = True) -> None:
        found = await self._active(payload)
        if found is None:
            return
        task, job = found
        failure = (payload.failure_class or FailureClass.CRASH).value
        decision = self.retry.decide(failure, task["failures"] + 1, job["max_attempts"])
        now = self.clock()
        fields: dict[str, Any] = {
            "error_class": failure, "error": (payload.error or "")[:2000],
            "exit_code": payload.exit_code, "log_key": payload.log_key,
            "finished_s": now, "failures": task["failures"] + int(decision.charge_attempt)}
        if decision.retry:
            fields |= {"state": TaskState.READY.value, "not_before_s": now + decision.delay_s,
                       "node_id": None} | self._more_memory(payload, task)
        elif failure == FailureClass.CANCELLED.value:
            fields["state"] = TaskState.FAILED.value
        else:
            fields["state"] = TaskState.DEAD.value
        if not await self.store.set_task(self._fence(payload), fields):
            return
        await self.store.record_attempt(self._entry(payload))
        self.metrics.ended(False, failure)
        if decision.retry:
            self.metrics.retries.inc()
        if blame_node:
            await self._blame_node(payload, job, failure)
        kind = "task.retrying" if decision.retry else "task.failed"
        await self.events.append(job["studio_id"], kind, f"job:{job['_id']}", {
            "job_id": job["_id"], "task_id": task["_id"], "index": task["index"],
            "attempt": payload.attempt, "failure_class": failure,
            "error": fields["error"][:500], "retry_in_s": round(decision.delay_s, 3)})
        if decision.retry:
            self.jobs.made_ready(job["_id"])
        else:
            self.jobs.touch(job["_id"])

    def _more_memory(self, payload: Finished, task: dict[str, Any]) -> dict[str, Any]:
        """Out of memory: the retry asks for a node with more memory than this one, when
        the farm has one that meets the task's other requirements."""
        if not payload.oom:
            return {}
        memory = self.bigger_node(payload.node_id, task["requirements"])
        if not memory or memory <= task["requirements"].get("memory_bytes", 0):
            return {}
        return {"requirements": task["requirements"] | {"memory_bytes": memory}}

    async def _blame_node(self, payload: Finished, job: dict, failure: str) -> None:
        node_id = payload.node_id
        if failure not in NODE_FAULTS:
            return
        opened = self.circuits.record_failure(node_id, job["_id"])
        self.circuits.record_failure((node_id, payload.kind), job["_id"])
        if opened:
            log.warning("circuit opened", extra={"node_id": node_id})
            await self.events.append(job["studio_id"], "node.circuit_opened",
                                     f"job:{job['_id']}", {"node_id": node_id,
                                                           "cooldown_s": self.circuits.cooldown_s})
        if self.bad_nodes.record_failure(job["_id"], node_id):
            await self._bar(job, node_id)

    async def _bar(self, job: dict, node_id: str) -> None:
        """The node gets no more of the job's tasks, unless one of them could then run
        nowhere: the job would wait for ever; left on the node instead, its tasks use up
        their attempts and it fails with their error."""
        barred = {*job.get("bad_nodes", []), node_id}
        for requirements in await self.store.open_requirements(job["_id"]):
            if not self.another_takes(requirements, barred):
                return
        await self.store.set_job(job["_id"], {"bad_nodes": sorted(barred)})
        self.jobs.made_ready(job["_id"])  # its queued tasks now avoid the node

    async def requeue_lost(self, task_id: str, attempt: int, node_id: str | None,
                           job_id: str | None, why: str = "it was lost") -> None:
        """The node is gone: the task goes back to the queue; no attempt is charged."""
        if await self.store.set_task(
                {"_id": task_id, "attempt": attempt, "state": {"$in": list(ACTIVE)}},
                {"state": TaskState.READY.value, "node_id": None, "not_before_s": 0.0,
                 "error_class": FailureClass.NODE_LOST.value,
                 "error": f"node {node_id}: {why}"}):
            task = await self.store.tasks.find_one({"_id": task_id})
            if task:
                await self._requeued(task, attempt, node_id)

    async def _requeued(self, task: dict[str, Any], attempt: int, node_id: str | None) -> None:
        task_id, job_id = task["_id"], task["job_id"]
        with request_context(task.get("request_id")):
            await self.store.record_attempt({
                "task_id": task_id, "job_id": job_id, "studio_id": task["studio_id"],
                "kind": task.get("kind"), "attempt": attempt, "node_id": node_id,
                "ok": False, "finished_s": self.clock(),
                "failure_class": FailureClass.NODE_LOST.value})
            self.jobs.made_ready(job_id)
            await self.events.append(task["studio_id"], "task.retrying", f"job:{job_id}",
                                     {"job_id": job_id, "task_id": task_id, "attempt": attempt,
                                      "failure_class": "node_lost", "retry_in_s": 0.0})
