"""The leases the dispatcher holds: renewed at heartbeats, stopped when steered away.

Both run on every round, so both are bounded: a renewal is written when half the lease is
left, not at every heartbeat; the leases of jobs the API steered are compared with MongoDB
the round they are steered, and once a tick a slice of the others, in turn, for a steer
whose wake-up was lost.
"""

from __future__ import annotations

from collections.abc import Callable

from pymongo import UpdateOne

from pipelines.farm.control.config import DispatchConfig
from pipelines.farm.control.node_state import NodeState, NodeTable
from pipelines.farm.control.ports import NodeDirectory
from pipelines.farm.control.progress import JobTracker
from pipelines.farm.models import ACTIVE, TaskState
from pipelines.farm.protocol import Attempt
from pipelines.farm.store import FarmStore

LEASES_CHECKED_PER_TICK = 500  # leases compared with MongoDB once a tick, in turn
Renewal = tuple[str, int, float]  # task, attempt, new expiry


class HeldLeases:
    def __init__(self, nodes: NodeTable, directory: NodeDirectory, store: FarmStore,
                 jobs: JobTracker, config: DispatchConfig, clock: Callable[[], float]):
        self.nodes, self.directory, self.store = nodes, directory, store
        self.jobs, self.config, self.clock = jobs, config, clock
        self.steered: set[str] = set()  # jobs steered through the API since last round
        self._checked_from = 0  # where the next tick's slice of leases starts

    async def heartbeat(self, node: NodeState, running: list[Attempt]) -> list[Renewal]:
        """Stop what the node runs that is not ours; the renewals to write."""
        reported = {(a.task_id, a.attempt) for a in running}
        now = self.clock()
        expires = now + self.config.lease_s
        ours = {(t, lease.attempt) for t, lease in node.running.items()}
        for task_id, attempt in reported - ours:
            # Running there, but not ours (killed, requeued, older attempt): stop it.
            await self.directory.agent(node.info.node_id).cancel(task_id, attempt)
        renew = []
        for task_id, attempt in reported & ours:
            lease = node.running[task_id]
            # A lease this dispatcher holds never expires under it (see
            # `_expire_silent_nodes`); the written expiry is for a dispatcher started later.
            if lease.expires_s - now < self.config.lease_s / 2:
                lease.expires_s = expires
                renew.append((task_id, attempt, expires))
        return renew

    async def renew(self, renewals: list[Renewal]) -> None:
        """Running tasks first, then those still leased: each state by equality (see
        `OutcomeHandler._fence_in`)."""
        def update(renewal: Renewal, state: str) -> UpdateOne:
            task_id, attempt, expires = renewal
            return UpdateOne({"_id": task_id, "attempt": attempt, "state": state},
                             {"$set": {"lease_expires_s": expires}})

        held = await self.store.apply([update(r, TaskState.RUNNING.value) for r in renewals])
        if held < len(renewals):
            await self.store.apply([update(r, TaskState.LEASED.value) for r in renewals])

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
