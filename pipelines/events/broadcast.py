"""The broadcaster: the newest events of each studio, and the replicas waiting for them.

Plain class (the actor in `actors/broadcaster.py` wraps it; a Ray-less app uses it in
process). Api replicas long-poll `wait_events` with their per-studio cursors and get every
buffered event above them, or wait until one is published: a publish wakes exactly the
replicas waiting on that studio. No state here is precious: the event log is the record.
After a restart `epoch` changes, which tells replicas to catch up from the log; a replica
that sees a jump in sequence numbers fills the hole from the log as well.
"""

from __future__ import annotations

import asyncio
import bisect
import time
import uuid
from typing import Any

IDLE_STUDIO_S = 600.0  # a studio's buffer with no publish for this long is dropped
SWEEP_EVERY = 1024  # publishes


class StudioBuffer:
    """The newest events of one studio, ordered by seq, bounded."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.seqs: list[int] = []
        self.events: list[dict[str, Any]] = []
        self.touched = time.monotonic()

    def add(self, event: dict[str, Any]) -> bool:
        seq = event["seq"]
        at = bisect.bisect_left(self.seqs, seq)
        if at < len(self.seqs) and self.seqs[at] == seq:
            return False  # a repeated publish (retried call)
        self.seqs.insert(at, seq)
        self.events.insert(at, event)
        self.touched = time.monotonic()
        if len(self.seqs) > self.capacity:
            del self.seqs[0], self.events[0]
        return True

    def above(self, cursor: int) -> list[dict[str, Any]]:
        return self.events[bisect.bisect_right(self.seqs, cursor):]


class Broadcaster:
    """`per_studio` bounds what a lagging replica can get from here; beyond, the log."""

    def __init__(self, per_studio: int = 256):
        self.per_studio = per_studio
        self.epoch = uuid.uuid4().hex
        self._buffers: dict[str, StudioBuffer] = {}
        self._waiters: dict[str, set[asyncio.Future]] = {}
        self._replicas: dict[str, tuple[frozenset[str], float]] = {}
        self.published = 0

    async def publish(self, event: dict[str, Any]) -> None:
        studio = event["studio_id"]
        buffer = self._buffers.setdefault(studio, StudioBuffer(self.per_studio))
        if not buffer.add(event):
            return
        self.published += 1
        if self.published % SWEEP_EVERY == 0:
            self._sweep()
        for waiter in self._waiters.pop(studio, ()):
            if not waiter.done():
                waiter.set_result(None)

    def _sweep(self) -> None:
        """Forget quiet studios (and replicas not heard from): memory stays bounded."""
        now = time.monotonic()
        for studio in [s for s, b in self._buffers.items() if now - b.touched > IDLE_STUDIO_S]:
            del self._buffers[studio]
        horizon = time.time() - IDLE_STUDIO_S
        for replica in [r for r, (_, seen) in self._replicas.items() if seen < horizon]:
            del self._replicas[replica]

    def _ready(self, cursors: dict[str, int]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for studio, cursor in cursors.items():
            buffer = self._buffers.get(studio)
            if buffer is not None:
                found.extend(buffer.above(cursor))
        return found

    async def wait_events(self, replica_id: str, cursors: dict[str, int],
                          timeout_s: float) -> dict[str, Any]:
        """Events above the cursors, waiting up to `timeout_s` for the first one."""
        self._replicas[replica_id] = (frozenset(cursors), time.time())
        found = self._ready(cursors)
        if not found and timeout_s > 0 and cursors:
            waiter = asyncio.get_running_loop().create_future()
            for studio in cursors:
                self._waiters.setdefault(studio, set()).add(waiter)
            try:
                await asyncio.wait_for(waiter, timeout_s)
            except TimeoutError:
                pass
            finally:
                for studio in cursors:
                    self._waiters.get(studio, set()).discard(waiter)
            found = self._ready(cursors)
        return {"epoch": self.epoch, "events": found}

    async def stats(self) -> dict[str, Any]:
        """Which replicas asked for which studios lately (for operators and tests)."""
        horizon = time.time() - 120
        return {"epoch": self.epoch, "published": self.published,
                "replicas": {rid: sorted(studios) for rid, (studios, seen)
                             in self._replicas.items() if seen >= horizon}}

    async def ping(self) -> str:
        return self.epoch
