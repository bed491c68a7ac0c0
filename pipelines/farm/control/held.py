"""The leases the dispatcher holds: checked at heartbeats, stopped when steered away, put
back in the queue when their node is lost or when a written lease ended unheld.

What runs every round is bounded: a heartbeat writes nothing; the leases of
jobs the API steered are compared with MongoDB the round they are steered, and once a tick
a slice of the others, in turn, for a steer whose wake-up was lost.
"""

from __future__ import annotations

from pipelines.farm.control.metrics import FarmMetrics
from pipelines.farm.control.node_state import Lease, Leases, NodeState, NodeTable
from pipelines.farm.control.outcomes import OutcomeHandler
from pipelines.farm.control.ports import NodeDirectory
from pipelines.farm.control.progress import JobTracker
from pipelines.farm.models import ACTIVE
from pipelines.farm.protocol import Attempt
from pipelines.farm.store import FarmStore

LEASES_CHECKED_PER_TICK = 500  # leases compared with MongoDB once a tick, in turn


class HeldLeases:
    def __init__(self, nodes: NodeTable, directory: NodeDirectory, store: FarmStore,
                 jobs: JobTracker, outcomes: OutcomeHandler, metrics: FarmMetrics):
        self.nodes, self.directory, self.store, self.jobs = nodes, directory, store, jobs
        self.outcomes, self.metrics = outcomes, metrics
        self.expiries_seen_to = 0.0  # written lease ends up to this time were looked at
        # Tasks of lost nodes not put back in MongoDB yet (it was away): task id → (its
        # lease, the node, why).
        self.to_requeue: dict[str, tuple[Lease, str, str]] = {}
        self.steered: set[str] = set()  # jobs steered through the API since last round
        self._checked_from = 0  # where the next tick's slice of leases starts

    async def heartbeat(self, node: NodeState, running: list[Attempt]) -> None:
        """Stop what the node runs that is not ours (killed, requeued, an older attempt).
        Nothing is written: a lease this dispatcher holds lasts while its node is heard
        from (see `Dispatcher._expire_silent_nodes`)."""
        ours = {(t, lease.attempt) for t, lease in node.running.items()}
        for attempt in running:
            if (attempt.task_id, attempt.attempt) not in ours:
                await self.directory.agent(node.info.node_id).cancel(attempt.task_id,
                                                                      attempt.attempt)

    async def lost(self, node_id: str, leases: Leases, why: str) -> None:
        """A lost node's tasks go back to the queue, without costing an attempt."""
        for task_id, lease in leases.items():
            self.to_requeue[task_id] = (lease, node_id, why)
        await self.requeue_lost()

    async def requeue_lost(self) -> None:
        """Each kept until written: nothing else would find it (its written lease may
        have ended long ago, while it was held)."""
        while self.to_requeue:
            task_id, (lease, node_id, why) = next(iter(self.to_requeue.items()))
            await self.outcomes.requeue_lost(task_id, lease.attempt, node_id, lease.job_id, why)
            del self.to_requeue[task_id]

    async def requeue_expired(self, now: float) -> None:
        """A lease is written with an end `lease_s` after hand-over; a task whose lease
        ends while this dispatcher does not hold it (a round that died between writing
        the lease and handing the task over) goes back to the queue. Each look reads only
        the leases that ended since the last, not every running task."""
        held = self.nodes.leases()
        for task in await self.store.expired_leases(self.expiries_seen_to, now):
            if task["_id"] not in held:
                self.metrics.lease_expiries.inc()
                await self.outcomes.requeue_lost(task["_id"], task["attempt"],
                                                 task.get("node_id"), task["job_id"])
        self.expiries_seen_to = now

    async def stop_steered(self, housekeeping: bool) -> None:
        """Tasks of cancelled jobs, or killed through the API, are stopped on their node."""
        steered, self.steered = self.steered, set()
        if not steered and not housekeeping:
            return
        leases = self.nodes.leases()
        if not leases:
            return
        check = [t for t, (_, _, job_id) in leases.items() if job_id in steered]
        if housekeeping:
            ids = list(leases)
            start = self._checked_from % len(ids)
            check += ids[start:start + LEASES_CHECKED_PER_TICK]
            self._checked_from = start + LEASES_CHECKED_PER_TICK
        running = {t: leases[t][:2] for t in check}
        states = await self.store.states_of(list(running))
        for task_id, state in states.items():
            if state not in ACTIVE:
                node_id, attempt = running[task_id]
                lease = self.nodes[node_id].running.pop(task_id, None)
                # The stopped attempt's own report is stale: recount the job now.
                self.jobs.touch(lease.job_id if lease else None)
                await self.directory.agent(node_id).cancel(task_id, attempt)
