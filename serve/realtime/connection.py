"""One authenticated WebSocket: rooms, a bounded send queue, flow control, heartbeats.

Three tasks per socket: the reader (client messages), the writer (the only sender), and
a ticker (heartbeat pings, the periodic credential check, the resume grace).

Why application-level flow control: behind the Serve proxy a replica's `send` never
blocks (measured: 20,000 x 1 KiB frames "sent" in 29 ms to a client that read nothing;
they pile up in the proxy). So the server counts frames: it pings every quarter window,
the client answers each `ping` with a `pong` carrying the same `id` (the number of frames
sent so far), and no more than one window of frames is ever unacknowledged. A client
that stops reading stops answering, the window closes, its queue fills, and it is closed
with 1013 while the room's other sockets carry on (delivery to a queue never waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocketDisconnect

from config.settings import Settings
from pipelines.errors import FarmError, Unauthenticated
from pipelines.events.feed import PAGE, encode
from pipelines.events.log import public
from pipelines.events.rooms import reaches, studio_room, user_room
from pipelines.events.throttle import TokenBucket
from pipelines.identity.models import Principal

if TYPE_CHECKING:
    from fastapi import WebSocket

    from serve.platform import Platform

log = logging.getLogger("farm.ws")

TOO_SLOW = (1013, "client too slow")
UNAUTHENTICATED = 4401
HEARTBEAT_LOST = (4408, "heartbeat timeout")


@dataclass(frozen=True)
class Limits:
    queue_frames: int
    max_message_bytes: int
    messages_per_s: float
    auth_recheck_s: float
    heartbeat_s: float
    resume_grace_s: float = 2.0

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.ws_send_queue_frames, settings.ws_max_message_bytes,
                   settings.ws_messages_per_s, settings.ws_auth_recheck_s,
                   settings.ws_heartbeat_s)

    @property
    def tick_s(self) -> float:
        return min(1.0, self.auth_recheck_s / 2, self.heartbeat_s / 2)


class Closed(Exception):
    """Unwinds a socket's task once the socket is closing."""


class Connection:
    def __init__(self, ws: WebSocket, platform: Platform, principal: Principal,
                 credential: str, limits: Limits):
        self.ws = ws
        self.platform = platform
        self.principal = principal
        self.credential = credential
        self.limits = limits
        self.studio_id = principal.studio_id
        self.rooms = {studio_room(self.studio_id), user_room(principal.user_id)}
        self.queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(limits.queue_frames)
        self.bucket = TokenBucket(limits.messages_per_s, 2 * limits.messages_per_s)
        self.delivered = 0  # the studio seq up to which this socket has been served
        self.behind = 0  # events above `delivered` dropped from the queue (read from the log)
        self.replaying = False
        self.sent = self.acked = self.pinged_at = 0
        self.last_heard = self.last_ping_s = time.monotonic()
        self.closing: tuple[int, str] | None = None
        self.peer_gone = False
        self.started = asyncio.Event()
        self.resume_from: int | None = None
        self._acked = asyncio.Event()
        self._done = asyncio.Event()

    # What the feed and the command handlers call (never blocking).

    def deliver(self, event: dict[str, Any], frame: str) -> None:
        if self.closing:
            return
        try:
            self.queue.put_nowait(("event", event, frame))
        except asyncio.QueueFull:
            if self.replaying or not self.started.is_set():
                self.behind = max(self.behind, event["seq"])  # the log still has it
            else:
                self.close_soon(*TOO_SLOW)

    def send(self, message: dict[str, Any]) -> None:
        if self.closing:
            return
        try:
            self.queue.put_nowait(("frame", encode(message)))
        except asyncio.QueueFull:
            self.close_soon(*TOO_SLOW)

    def close_soon(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, reason)
            level = logging.DEBUG if code in (1000, 1001, 1005) else logging.INFO
            log.log(level, "socket closing", extra={"code": code, "reason": reason})
        self._done.set()

    def on_pong(self, frame_id: Any) -> None:
        if isinstance(frame_id, int) and not isinstance(frame_id, bool):
            self.acked = max(self.acked, min(frame_id, self.sent))
            self._acked.set()

    def start(self, resume_from: int | None = None) -> None:
        if resume_from is not None:
            self.resume_from = resume_from
        self.started.set()

    # The socket's life.

    async def run(self, hello: dict[str, Any], resume_from: int | None,
                  reader: Callable[[Connection], Awaitable[None]],
                  start_now: bool = False) -> None:
        """Serve the socket until it closes: `reader` handles what the client sends (the
        commands); `start_now`: live delivery needs no first message (the client already
        sent one: its auth message, or ?last_seq=)."""
        feed = self.platform.feed
        try:
            self.delivered = await feed.join(self)
        except FarmError as exc:
            await self.ws.close(1011, exc.code)
            return
        tasks: list[asyncio.Task] = []
        self.platform.metrics.sockets.inc()
        try:
            await self._send(encode({**hello, "seq": self.delivered,
                                     "rooms": sorted(self.rooms)}))
            if resume_from is not None or start_now:
                self.start(resume_from)
            tasks = [asyncio.create_task(self._guard(job)) for job in (
                reader(self), self._writer(), self._ticker())]
            await self._done.wait()
        finally:
            self.platform.metrics.sockets.dec()
            feed.leave(self)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not self.peer_gone:
                code, reason = self.closing or (1000, "")
                with contextlib.suppress(Exception):
                    await self.ws.close(code, reason)

    async def _guard(self, job: Any) -> None:
        try:
            await job
        except Closed:
            self._done.set()
        except asyncio.CancelledError:
            raise
        except (OSError, WebSocketDisconnect):  # the client went away while we wrote
            self.peer_gone = True
            self._done.set()
        except Exception as exc:  # noqa: BLE001 - one socket's failure stays with it
            if self.closing is None and not self.peer_gone:
                log.exception("socket task failed: %s", type(exc).__name__)
                self.close_soon(1011, "internal error")
            self._done.set()

    # The writer: the only task that sends, in seq order, within the window.

    async def _writer(self) -> None:
        await self.started.wait()
        if self.resume_from is not None:
            await self._replay(self.resume_from)
        while True:
            if self.queue.empty() and self.behind > self.delivered:
                await self._fill(self.behind)
            item = await self.queue.get()
            if item[0] == "event":
                await self._send_event(item[1], item[2])
            elif item[0] == "frame":
                await self._send(item[1])
            else:
                await self._ping()

    async def _send_event(self, event: dict[str, Any], frame: str) -> None:
        seq = event["seq"]
        if seq <= self.delivered:
            return  # already sent (from the log, during a replay or a fill)
        if seq > self.delivered + 1:
            await self._fill(seq - 1)
        if reaches(event, self.rooms):
            await self._send(frame)
            self.platform.metrics.events_sent.inc()
        self.delivered = seq

    async def _fill(self, upto: int) -> None:
        """Send what the socket missed, from the log; a pruned hole means resync."""
        events = self.platform.events
        while self.delivered < upto:
            docs = await events.after(self.studio_id, self.delivered, limit=PAGE, upto=upto)
            if not docs or docs[0]["seq"] != self.delivered + 1:
                await self._send(encode({"type": "resync", "seq": upto}))
                self.delivered = upto
                return
            for doc in docs:
                event = public(doc)
                if reaches(event, self.rooms):
                    await self._send(encode(event))
                    self.platform.metrics.events_sent.inc()
                self.delivered = doc["seq"]

    async def _replay(self, last_seq: int) -> None:
        events, feed = self.platform.events, self.platform.feed
        head = await events.head(self.studio_id)
        oldest = await events.oldest(self.studio_id)
        if last_seq > head or (oldest is not None and last_seq < oldest - 1):
            await self._send(encode({"type": "resync", "seq": self.delivered,
                                     "oldest_seq": oldest, "head_seq": head}))
            return
        self.delivered, self.replaying = last_seq, True
        try:
            while self.delivered < feed.cursor(self.studio_id):
                await self._fill(feed.cursor(self.studio_id))
        finally:
            self.replaying = False  # no await since the check above: nothing slipped by
        await self._send(encode({"type": "resumed", "from_seq": last_seq,
                                 "seq": self.delivered}))

    async def _send(self, text: str) -> None:
        if self.sent - self.acked >= self.limits.queue_frames:
            await self._wait_for_window()
        await self._write(text)
        if self.sent - self.pinged_at >= max(1, self.limits.queue_frames // 4):
            await self._ping()

    async def _ping(self) -> None:
        self.pinged_at, self.last_ping_s = self.sent + 1, time.monotonic()
        await self._write(encode({"type": "ping", "id": self.sent + 1}))

    async def _write(self, text: str) -> None:
        if self.closing:
            raise Closed
        await self.ws.send_text(text)
        self.sent += 1

    async def _wait_for_window(self) -> None:
        deadline = time.monotonic() + self.limits.heartbeat_s
        while self.sent - self.acked >= self.limits.queue_frames:
            self._acked.clear()
            try:
                await asyncio.wait_for(self._acked.wait(), deadline - time.monotonic())
            except TimeoutError:
                self.close_soon(*TOO_SLOW)
                raise Closed from None

    # The ticker: resume grace, heartbeats, credential re-check.

    async def _ticker(self) -> None:
        limits = self.limits
        started_at = next_check = time.monotonic()
        next_check += limits.auth_recheck_s
        while True:
            await asyncio.sleep(limits.tick_s)
            now = time.monotonic()
            if not self.started.is_set() and now - started_at >= limits.resume_grace_s:
                self.start()
            if now - self.last_heard > 3 * limits.heartbeat_s:
                self.close_soon(*HEARTBEAT_LOST)
                raise Closed
            if self.started.is_set() and now - self.last_ping_s >= limits.heartbeat_s:
                with contextlib.suppress(asyncio.QueueFull):
                    self.queue.put_nowait(("ping",))
            if now >= next_check:
                next_check = now + limits.auth_recheck_s
                await self._recheck()

    async def _recheck(self) -> None:
        """Token expired, user deactivated or removed, key revoked: closed with 4401."""
        authenticator = self.platform.identity.authenticator
        try:
            principal = await authenticator.authenticate(self.credential)
        except Unauthenticated as exc:
            self.close_soon(UNAUTHENTICATED, exc.code)
            raise Closed from None
        except FarmError as exc:  # the database is away: keep the socket, check again later
            log.warning("socket credential check postponed: %s", exc.message)
            return
        if (principal.user_id, principal.studio_id) != (self.principal.user_id,
                                                        self.studio_id):
            self.close_soon(UNAUTHENTICATED, "credential_changed")
            raise Closed
        self.principal = principal  # an API key acts with its owner's current role
