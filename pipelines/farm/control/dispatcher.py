"""The farm's scheduler: reconciles MongoDB (desired state) with the nodes (actual state).

A plain class: the Ray actor in `actors/dispatcher.py` only wraps it. One `step()` is one
reconciliation round; `run_forever()` calls it when woken (a submission, a report from a
node) or after `tick_s`, never in a busy loop. Every transition is a conditional update
carrying the task's attempt number (a fencing token), so a late report from an older
attempt, or from a node that was given up on, changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from pymongo import UpdateOne

from pipelines.db import database_away
from pipelines.events.log import EventLog
from pipelines.farm.control.config import DispatchConfig
from pipelines.farm.control.feed import QueueFeed
from pipelines.farm.control.held import HeldLeases
from pipelines.farm.control.messages import Leaving, Message, Written, task_spec
from pipelines.farm.control.metrics import FarmMetrics
from pipelines.farm.control.node_controls import NodeControls
from pipelines.farm.control.node_state import Lease, NodeDocs, NodeState, NodeTable
from pipelines.farm.control.outcomes import OutcomeHandler, SuccessHook
from pipelines.farm.control.pacing import LeasePacer
from pipelines.farm.control.policy import BadNodes, CircuitBreakers, RetryPolicy
from pipelines.farm.control.ports import NodeDirectory
from pipelines.farm.control.progress import JobTracker
from pipelines.farm.control.scheduler import Scheduler, TaskView, node_index
from pipelines.farm.control.waiting import Waiting
from pipelines.farm.models import TaskState
from pipelines.farm.protocol import (
    Attempt,
    Finished,
    Heartbeat,
    Progressed,
    ProtocolMismatch,
    Started,
    TaskSpec,
)
from pipelines.farm.store import FarmStore

log = logging.getLogger("farm.dispatcher")

LEFT_NODE_QUARANTINE_S = 300.0
SAVE_NODES_S = 2.0  # the nodes table is for people; building it reads every node
Adopter = Callable[[], Awaitable[int]]


class Dispatcher:
    def __init__(self, store: FarmStore, directory: NodeDirectory, events: EventLog,
                 config: DispatchConfig | None = None,
                 hooks: dict[str, SuccessHook] | None = None,
                 adopt: Adopter | None = None, clock: Callable[[], float] = time.time):
        self.store = store
        self.events = events
        self.directory = directory
        self.config = config or DispatchConfig()
        self.clock = clock
        self.nodes = NodeTable()
        self.reports: list[Message] = []
        self.wakeup = asyncio.Event()
        self.circuits = CircuitBreakers(self.config.circuit_threshold,
                                        self.config.circuit_cooldown_s, clock)
        self.metrics = FarmMetrics()
        self.jobs = JobTracker(store, events, clock)
        self.outcomes = OutcomeHandler(
            store, events, self.jobs, RetryPolicy(self.config.retry_initial_s,
                                                  self.config.retry_max_s),
            self.circuits, BadNodes(self.config.bad_node_threshold), hooks or {}, clock,
            bigger_node=self.nodes.bigger_memory, another_takes=self.nodes.another_takes,
            metrics=self.metrics)
        self.waiting = Waiting(store, events, self.jobs, clock)
        self.adopt = adopt
        self.scheduler = Scheduler(self.circuits.allows_task, self.circuits.task_placed)
        self.pacer = LeasePacer(self.config.leases_per_round, self.config.lease_work_s)
        self.feed = QueueFeed(store, clock)
        self.held = HeldLeases(self.nodes, directory, store, self.jobs, self.outcomes,
                               self.metrics)
        self.controls = NodeControls(store, events, self.nodes)
        self._node_docs = NodeDocs()
        self._housekeeping = True
        self._recovered = False
        self._nodes_saved_at = 0.0
        self._housekept_at = 0.0
        self._adopt_due = False

    # -- called by agents and the API (through the actor) -------------------------------
    def report(self, message: Message) -> None:
        self.reports.append(message)
        self.wakeup.set()

    async def report_many(self, reports: list[Started | Progressed | Finished]) -> None:
        """Results are acknowledged once written, not once received: a dispatcher that
        dies in between fails the agent's call, which sends them to the next one (a result
        acknowledged and then lost would run its task again)."""
        for report in reports:
            self.report(report)
        if any(isinstance(report, Finished) for report in reports):
            written: asyncio.Future = asyncio.get_running_loop().create_future()
            self.report(Written(written))
            await written

    def heartbeat(self, beat: Heartbeat) -> None:
        self.report(beat)

    def leave(self, node_id: str) -> None:
        """A node is leaving on purpose (`farm join` stopping): its tasks go back to the
        queue at once, without costing an attempt, and it is given nothing new."""
        self.report(Leaving(node_id))

    def refuse(self, node_id: str, why: ProtocolMismatch) -> None:
        """A node speaking another protocol version gets no work (it would misread it);
        the log and the nodes table say why, until it is upgraded and joins again."""
        if node_id not in self.nodes.refused:
            log.error("node refused: %s", why.message, extra={"node_id": node_id})
        self.nodes.refused[node_id] = why.message
        self.wakeup.set()

    def wake(self, job_id: str | None = None) -> None:
        """New work or a steered job (recounted: its tasks may have ended while paused)."""
        self.jobs.touch(job_id)
        self.feed.job_changed(job_id)
        if job_id:
            self.held.steered.add(job_id)
        self.jobs.dependencies_may_have_changed = True  # a retry makes tasks wait again
        self._adopt_due = True
        self.wakeup.set()

    # -- the loop -------------------------------------------------------------------------
    async def run_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), self.config.tick_s)
            # Reports come in bursts: a few milliseconds' wait makes one round of many.
            await asyncio.sleep(self.config.coalesce_s)
            self.wakeup.clear()
            try:
                await self.step()
            except Exception:  # noqa: BLE001 - one bad round must not stop the farm
                log.exception("dispatch round failed; retrying next round")

    async def step(self) -> None:
        with self.metrics.rounds.time():
            await self._step()
        self.pacer.round_over()
        if self._housekeeping:
            self.metrics.observe_farm(self.feed.jobs.values(), self.nodes.states(
                lambda n: self.circuits.state(n).value), *self.nodes.slots())

    async def _step(self) -> None:
        if not self._recovered:
            await self._recover()
        # Housekeeping that reads the cluster or whole collections runs once a tick; the
        # hot path (reports, scheduling, counts) runs every round.
        now = self.clock()
        housekeeping = now - self._housekept_at >= self.config.tick_s
        if housekeeping:
            self._housekept_at = now
        self._housekeeping = housekeeping
        adopt_due, self._adopt_due = self._adopt_due, False
        phases = [*([self._refresh_nodes] if housekeeping else []), self._apply_reports,
                  *([self.held.requeue_lost] if self.held.to_requeue else []),
                  *([self._expire_silent_nodes] if housekeeping else []),
                  *([self._adopt] if self.adopt and (housekeeping or adopt_due) else []),
                  self._enforce_cancellations,
                  *([self.waiting.promote] if housekeeping or
                    self.jobs.dependencies_may_have_changed else []), self._schedule,
                  self.jobs.flush, self._save_nodes]
        for phase in phases:
            try:  # a failing phase must not starve the others (job counts, heartbeats)
                await phase()
            except Exception as exc:  # noqa: BLE001
                self.jobs.count_all_again()
                name = getattr(phase, "__name__", type(phase).__name__)
                if database_away(exc):  # one line a round, not a traceback, while it is away
                    log.warning("dispatch phase %s: the database is unavailable (%s); "
                                "retrying", name, type(exc).__name__)
                else:
                    log.exception("dispatch phase %s failed", name)

    async def _adopt(self) -> None:
        if self.adopt and await self.adopt():
            self.feed.job_changed(None)  # new jobs: the list of jobs is read again

    async def _save_nodes(self) -> None:
        """Every SAVE_NODES_S, and only what changed (see `NodeDocs`): the table is
        for people, not for scheduling."""
        now = self.clock()
        if now - self._nodes_saved_at >= SAVE_NODES_S:
            self._nodes_saved_at = now
            docs = self.nodes.docs(lambda node_id: self.circuits.state(node_id).value, now)
            await self.store.save_nodes(*self._node_docs.to_write(docs, now))

    async def _recover(self) -> None:
        """After a (re)start: what MongoDB says is leased or running is checked with the
        agents; what no agent runs any more is requeued without charging an attempt.
        Agents first, then results that arrived, then MongoDB: a task that ended while no
        dispatcher ran is claimed (result on its way) or recorded, never run again."""
        infos = {i.node_id: i for i in await self.directory.discover()}
        claimed: dict[str, set[Attempt]] = {}
        for node_id in infos:
            try:
                claimed[node_id] = set(await self.directory.agent(node_id).running())
            except ProtocolMismatch as exc:
                self.refuse(node_id, exc)
                claimed[node_id] = set()
            except Exception:  # noqa: BLE001 - an unreachable agent runs nothing
                claimed[node_id] = set()
        await self._apply_reports()
        active = await self.store.active_tasks()
        for task in active:
            holder = task.get("node_id") or ""
            if holder in infos and Attempt(task_id=task["_id"], attempt=task["attempt"]
                                           ) in claimed[holder]:
                state = self.nodes.setdefault(holder, NodeState(infos[holder], self.clock()))
                state.running[task["_id"]] = Lease(task["attempt"], task["requirements"]["slots"],
                                                   task["studio_id"], task["job_id"],
                                                   task.get("layer"))
            else:
                await self.outcomes.requeue_lost(task["_id"], task["attempt"], holder,
                                                 task["job_id"])
        self._recovered = True
        self.held.expiries_seen_to = self.clock()  # every active task was accounted for
        log.info("dispatcher recovered", extra={"active_tasks": len(active)})

    async def _refresh_nodes(self) -> None:
        now = self.clock()
        found = {info.node_id: info for info in await self.directory.discover()
                 if self.nodes.welcome(info.node_id, now)}
        for node_id, info in found.items():
            if node_id not in self.nodes:
                self.nodes[node_id] = NodeState(info, self.clock())
                log.info("node joined", extra={"node_id": node_id, "slots": info.slots})
            self.nodes[node_id].info = info
        for node_id in [n for n in self.nodes if n not in found]:
            await self._lose_node(node_id, self.nodes.refused.get(node_id)
                                  or "the node left the cluster")
        await self.controls.refresh()

    async def _lose_node(self, node_id: str, why: str) -> None:
        state = self.nodes.pop(node_id)
        self.metrics.nodes_lost.inc()
        self.directory.forget(node_id)
        log.warning("node lost: %s", why, extra={"node_id": node_id,
                                                  "tasks": len(state.running)})
        await self.held.lost(node_id, state.running, why)

    async def _node_left(self, node_id: str) -> None:
        # Out of scheduling until the cluster forgets it (a new raylet gets a new id).
        self.nodes.quarantine[node_id] = self.clock() + LEFT_NODE_QUARANTINE_S
        if (state := self.nodes.get(node_id)) is not None:
            # Requeued first: the reports of the stopped attempts then change nothing.
            await self._lose_node(node_id, "it left the farm")
            for task_id, lease in state.running.items():  # (no agent is started for none)
                await self.directory.agent(node_id).cancel(task_id, lease.attempt)

    async def _expire_silent_nodes(self) -> None:
        now = self.clock()
        for node_id, state in list(self.nodes.items()):
            if state.running and now - state.last_seen > self.config.node_silence_s:
                await self._lose_node(node_id, "no heartbeat")
        await self.held.requeue_expired(now)

    async def _apply_reports(self) -> None:
        reports, self.reports = self.reports, []
        try:
            with self.pacer.paced():
                await self._apply(reports)
        except BaseException:
            # The database went away mid-batch: every report stays for the next round, or a
            # result lost here would run its task again. Each write is fenced by (task,
            # attempt, state), so what did land applies again as a no-op.
            self.reports[:0] = reports
            raise

    async def _apply(self, reports: list[Message]) -> None:
        started: list[Started] = []
        succeeded: list[Finished] = []
        written: list[asyncio.Future] = []
        layers: dict[str, str | None] = {}  # of the reported tasks whose lease is held here
        for report in reports:
            if isinstance(report, Written):
                written.append(report.future)
                continue
            node = self.nodes.get(report.node_id)
            if node is not None:
                node.last_seen = self.clock()
            if isinstance(report, Leaving):
                await self._node_left(report.node_id)
            elif isinstance(report, Heartbeat):
                if node is not None:
                    await self.held.heartbeat(node, report.running)
            elif isinstance(report, Started):
                if node is not None and (lease := node.running.get(report.task_id)):
                    layers[report.task_id] = lease.layer
                started.append(report)
            elif isinstance(report, Progressed):
                self.jobs.progress(report)
            else:
                if node is not None:
                    if (lease := node.running.pop(report.task_id, None)) is not None:
                        node.ends.ended(self.clock(), lease.slots)  # once, not per report
                        layers[report.task_id] = lease.layer
                    self.circuits.trial_over(node.info.node_id, report.kind)
                if report.ok:
                    succeeded.append(report)
                else:
                    await self.outcomes.failed(report)
        # Batched: a busy farm reports hundreds of starts and successes a second.
        # A task that started and ended within the batch gets one write, not two.
        ending = {(r.task_id, r.attempt) for r in succeeded if r.kind not in self.outcomes.hooks}
        await self.outcomes.started(started, ending, layers)
        await self.outcomes.succeeded(succeeded,
                                      {(r.task_id, r.attempt) for r in started} & ending,
                                      layers)
        for future in written:
            if not future.done():  # its caller may have gone meanwhile
                future.set_result(None)

    async def _enforce_cancellations(self) -> None:
        await self.held.stop_steered(self._housekeeping)

    async def _schedule(self) -> None:
        ready_again, self.jobs.ready_again = self.jobs.ready_again, set()
        for job_id in ready_again:
            self.feed.job_changed(job_id)
        await self.feed.refresh(recheck=self._housekeeping)
        # Leasing ahead of free slots hides the report -> lease round trip (see Slots).
        ahead = self.config.dispatch_ahead
        nodes = node_index(self.nodes.views(ahead, self.clock()),
                           lambda: self.nodes.sizes(ahead))
        if nodes.free_total <= 0 or not self.feed.queue:
            return
        plan = self.scheduler.place(self.feed.queue, nodes, self.nodes.running_by_studio(),
                                    limit=self.pacer.limit)
        self.feed.placed({view.job_id for view, _ in plan})
        with self.pacer.paced():
            await self._lease(plan)

    async def _lease(self, planned: list[tuple[TaskView, str]]) -> None:
        now = self.clock()
        tasks = await self.store.tasks_by_id([view.task_id for view, _ in planned])
        plan = []
        for view, node_id in planned:
            if tasks.get(view.task_id, {}).get("state") == TaskState.READY.value:
                plan.append((view, node_id))
            else:  # changed since the queue read it (paused, cancelled): read the job again
                self.circuits.trial_over(node_id, view.kind)
                self.feed.job_changed(view.job_id)
        updates = [UpdateOne(
            {"_id": view.task_id, "state": TaskState.READY.value,
             "attempt": tasks[view.task_id]["attempt"]},
            {"$set": {"state": TaskState.LEASED.value, "node_id": node_id,
                      "attempt": tasks[view.task_id]["attempt"] + 1,
                      "lease_expires_s": now + self.config.lease_s, "progress": 0.0}})
            for view, node_id in plan]
        held = await self.store.apply(updates)
        # All held (the usual case): no need to read which; otherwise some task changed
        # meanwhile (cancelled, paused) and the states say which.
        leased = ({view.task_id: TaskState.LEASED.value for view, _ in plan}
                  if held == len(updates) else
                  await self.store.states_of([view.task_id for view, _ in plan]))
        handed: dict[str, list[TaskSpec]] = {}
        for view, node_id in plan:
            if leased.get(view.task_id) != TaskState.LEASED.value:
                self.circuits.trial_over(node_id, view.kind)
                self.feed.job_changed(view.job_id)
                continue  # changed meanwhile (cancelled, paused): not ours to run
            task = tasks[view.task_id]
            attempt = task["attempt"] + 1
            if node_id not in self.nodes:  # lost earlier in this round
                await self.outcomes.requeue_lost(view.task_id, attempt, node_id, view.job_id)
                continue
            self.nodes[node_id].running[view.task_id] = Lease(
                attempt, view.slots, view.studio_id, view.job_id, task.get("layer"))
            self.jobs.moved(view.job_id, task.get("layer"), TaskState.READY.value,
                            TaskState.LEASED.value)
            handed.setdefault(node_id, []).append(
                task_spec(task, attempt, node_id, self.nodes[node_id].info.slots))
        # One call per node and round, to all nodes at once.
        async def hand(node_id: str, specs: list[TaskSpec]) -> None:
            await self.directory.agent(node_id).run_many(specs)

        results = await asyncio.gather(*(hand(node_id, specs)
                                         for node_id, specs in handed.items()),
                                       return_exceptions=True)
        for node_id, result in zip(handed, results, strict=True):
            if isinstance(result, ProtocolMismatch):
                self.refuse(node_id, result)
            elif isinstance(result, BaseException):  # the agent is gone with its node
                # Ignored a while, though the cluster may list it for 10-15 s more.
                self.nodes.quarantine[node_id] = self.clock() + self.config.node_silence_s
            if isinstance(result, BaseException) and node_id in self.nodes:
                await self._lose_node(node_id, f"its agent did not take the tasks: {result}")
