"""One replica's live feed: events of the studios it holds sockets of, in order, no gaps.

One task per process long-polls the broadcaster with a cursor per studio (the last seq
handed to this replica's sockets). Because a studio's seqs are contiguous, a jump tells
exactly what is missing, and it is read from the event log before anything later is
handed on. When the broadcaster restarts (its epoch changes) or cannot be reached, the
feed waits, asks again and catches every studio up from the log; a slow safety net also
compares the cursors with the log now and then, for a publish lost without a restart.
The database is never polled on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from pipelines.errors import FarmError
from pipelines.events.log import EventLog, public

log = logging.getLogger("farm.events.feed")

PAGE = 500


class EventSource(Protocol):
    """The broadcaster as seen from a replica; raises DependencyUnavailable when away."""

    async def wait_events(self, replica_id: str, cursors: dict[str, int],
                          timeout_s: float) -> dict[str, Any]: ...


class Subscriber(Protocol):
    studio_id: str

    def deliver(self, event: dict[str, Any], frame: str) -> None:
        """Called in seq order for every event of the studio; must not block."""


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


class Feed:
    def __init__(self, events: EventLog, source: EventSource, replica_id: str, *,
                 poll_timeout_s: float = 10.0, safety_net_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.events = events
        self.source = source
        self.replica_id = replica_id
        self.poll_timeout_s = poll_timeout_s
        self.safety_net_s = safety_net_s
        self.clock = clock
        self.cursors: dict[str, int] = {}
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.epoch: str | None = None
        self.delivered = 0
        self._changed = asyncio.Event()

    async def join(self, subscriber: Subscriber) -> int:
        """Add a socket; it receives every event above the returned cursor, in order."""
        studio = subscriber.studio_id
        if studio not in self.cursors:
            head = await self.events.head(studio)
            if studio not in self.cursors:  # another socket of the studio may have won
                self.cursors[studio] = head
                self._changed.set()
        self.subscribers.setdefault(studio, set()).add(subscriber)
        return self.cursors[studio]

    def leave(self, subscriber: Subscriber) -> None:
        studio = subscriber.studio_id
        members = self.subscribers.get(studio)
        if members is None:
            return
        members.discard(subscriber)
        if not members:
            del self.subscribers[studio]
            self.cursors.pop(studio, None)
            self._changed.set()

    def cursor(self, studio_id: str) -> int:
        return self.cursors.get(studio_id, 0)

    async def run(self) -> None:
        """The pump: never returns; every failure is logged and retried."""
        backoff, last_net = 0.2, self.clock()
        while True:
            if not self.cursors:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                reply = await self._poll()
                if reply is not None:
                    await self._apply(reply)
                if self.clock() - last_net >= self.safety_net_s:
                    last_net = self.clock()
                    await self.catch_up()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the pump must outlive any failure
                self.epoch = None  # whatever comes back next, catch up from the log first
                log.warning("event feed: %s; retrying in %.1fs",
                            getattr(exc, "message", repr(exc)), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _poll(self) -> dict[str, Any] | None:
        """One long poll, abandoned (and asked again) when the set of studios changes."""
        self._changed.clear()
        poll = asyncio.ensure_future(self.source.wait_events(
            self.replica_id, dict(self.cursors), self.poll_timeout_s))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({poll, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
        if not poll.done():
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, FarmError):
                await poll
            return None
        return poll.result()

    async def _apply(self, reply: dict[str, Any]) -> None:
        if reply["epoch"] != self.epoch:
            # A new broadcaster (or the first answer): what it never saw is in the log.
            await self.catch_up()
            self.epoch = reply["epoch"]
        for event in sorted(reply["events"], key=lambda e: (e["studio_id"], e["seq"])):
            await self.advance(event["studio_id"], event["seq"], event)

    async def catch_up(self) -> None:
        for studio in list(self.cursors):
            await self.advance(studio, await self.events.head(studio))

    async def advance(self, studio: str, upto: int, event: dict[str, Any] | None = None) -> None:
        """Hand on everything up to `upto` (reading what is missing from the log)."""
        while studio in self.cursors and self.cursors[studio] < upto - (event is not None):
            docs = await self.events.after(studio, self.cursors[studio], limit=PAGE,
                                           upto=upto - (event is not None))
            if not docs:
                break
            for doc in docs:
                self._fan_out(public(doc))
        if event is not None:
            self._fan_out(event)

    def _fan_out(self, event: dict[str, Any]) -> None:
        studio = event["studio_id"]
        if studio not in self.cursors or event["seq"] <= self.cursors[studio]:
            return  # already handed on (a repeated publish, or read from the log)
        self.cursors[studio] = event["seq"]
        self.delivered += 1
        frame = encode(event)
        for subscriber in list(self.subscribers.get(studio, ())):
            subscriber.deliver(event, frame)
