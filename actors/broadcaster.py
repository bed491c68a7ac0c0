"""The broadcaster: one detached, named, restartable actor over pipelines' Broadcaster.

`RayEventPublisher` is what an EventLog is given in any process of the cluster (Api
replicas, the dispatcher actor): `EventLog(db, publisher=RayEventPublisher())`.
`RayEventSource` is a replica's long-poll side. Both turn Ray's failures into
DependencyUnavailable, and both find the actor again after it restarts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray
from ray.exceptions import RayError

from pipelines.errors import DependencyUnavailable
from pipelines.events.broadcast import Broadcaster

NAME = "farm-broadcaster"
NAMESPACE = "studio-farm"

BroadcasterActor = ray.remote(Broadcaster)


def broadcaster():
    """Get the broadcaster, creating it on first use (safe when several processes race).

    Restarted by Ray when it dies (`max_restarts=-1`); calls caught by a restart are
    retried on the new incarnation, whose new `epoch` makes replicas catch up.
    """
    return BroadcasterActor.options(
        name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_restarts=-1, max_task_retries=3, max_concurrency=10_000,
    ).remote()


class _Handle:
    def __init__(self) -> None:
        self._actor: Any = None

    @property
    def actor(self) -> Any:
        if self._actor is None:
            self._actor = broadcaster()
        return self._actor

    def forget(self) -> None:
        self._actor = None

    def __getstate__(self) -> dict[str, Any]:  # handles are looked up again after pickling
        return {**self.__dict__, "_actor": None}


class RayEventPublisher(_Handle):
    """EventPublisher over the broadcaster actor."""

    def __init__(self, timeout_s: float = 2.0) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    async def publish(self, event: dict[str, Any]) -> None:
        try:
            await asyncio.wait_for(self.actor.publish.remote(event), self.timeout_s)
        except (RayError, TimeoutError) as exc:
            self.forget()
            raise DependencyUnavailable(
                f"broadcaster unavailable: {type(exc).__name__}") from exc


class RayEventSource(_Handle):
    """EventSource (a replica's long poll) over the broadcaster actor."""

    async def wait_events(self, replica_id: str, cursors: dict[str, int],
                          timeout_s: float) -> dict[str, Any]:
        ref = self.actor.wait_events.remote(replica_id, cursors, timeout_s)
        try:
            return await asyncio.wait_for(ref, timeout_s + 30)
        except asyncio.CancelledError:
            ray.cancel(ref)  # the set of studios changed: free the actor's waiter now
            raise
        except (RayError, TimeoutError) as exc:
            self.forget()
            raise DependencyUnavailable(
                f"broadcaster unavailable: {type(exc).__name__}") from exc

    async def stats(self) -> dict[str, Any]:
        try:
            return await self.actor.stats.remote()
        except RayError as exc:
            self.forget()
            raise DependencyUnavailable("broadcaster unavailable") from exc
