"""Live delivery as plain classes: rooms, the broadcaster, a replica's feed, throttles."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from pydantic import ValidationError

from pipelines.errors import DependencyUnavailable, Forbidden, InvalidInput
from pipelines.events.broadcast import Broadcaster
from pipelines.events.feed import Feed
from pipelines.events.rooms import audience, check_own, reaches
from pipelines.events.throttle import ProgressThrottle, TokenBucket
from serve.realtime import messages as protocol


def event(seq: int, room: str = "asset:a1", studio: str = "s1") -> dict[str, Any]:
    return {"seq": seq, "type": "test.tick", "studio_id": studio, "room": room,
            "at": "2026-01-01T00:00:00.000+00:00", "data": {}}


class FakeLog:
    """The EventLog's read side over a list (the real one is tested against the database)."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []

    def store(self, *seqs: int, studio: str = "s1") -> list[dict[str, Any]]:
        new = [{**event(seq, studio=studio), "at_s": 0.0} for seq in seqs]
        self.docs.extend(new)
        return [event(seq, studio=studio) for seq in seqs]

    async def head(self, studio_id: str) -> int:
        return max((d["seq"] for d in self.docs if d["studio_id"] == studio_id), default=0)

    async def after(self, studio_id: str, seq: int, *, limit: int = 100,
                    upto: int | None = None, **_: Any) -> list[dict[str, Any]]:
        found = sorted((d for d in self.docs if d["studio_id"] == studio_id and d["seq"] > seq
                        and (upto is None or d["seq"] <= upto)), key=lambda d: d["seq"])
        return found[:limit]


class Sink:
    def __init__(self, studio_id: str = "s1") -> None:
        self.studio_id = studio_id
        self.seqs: list[int] = []
        self.arrived = asyncio.Event()

    def deliver(self, event: dict[str, Any], frame: str) -> None:
        assert f'"seq":{event["seq"]}' in frame
        self.seqs.append(event["seq"])
        self.arrived.set()

    async def until(self, count: int) -> list[int]:
        async def wait() -> None:
            while len(self.seqs) < count:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(wait(), 5)
        return self.seqs


class Switchable:
    """A source that can be down, or replaced by a new broadcaster (a restart)."""

    def __init__(self) -> None:
        self.current = Broadcaster()
        self.down = False

    async def wait_events(self, replica_id: str, cursors: dict[str, int],
                          timeout_s: float) -> dict[str, Any]:
        if self.down:
            raise DependencyUnavailable("away")
        return await self.current.wait_events(replica_id, cursors, timeout_s)


@contextlib.asynccontextmanager
async def running(feed: Feed):
    task = asyncio.create_task(feed.run())
    try:
        yield feed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_rooms_rule_studio_sees_all_but_personal_events():
    assert audience("s1", "job:j1") == ["job:j1", "studio:s1"]
    assert audience("s1", "user:u1") == ["user:u1"]
    assert reaches(event(1, "job:j1"), {"studio:s1"})
    assert not reaches(event(1, "user:u2"), {"studio:s1", "user:u1"})
    assert reaches(event(1, "user:u1"), {"user:u1"})
    assert not reaches(event(1, "job:j1", studio="s2"), {"studio:s1"})
    with pytest.raises(Forbidden):
        check_own("studio:s2", "s1", "u1")
    with pytest.raises(Forbidden):
        check_own("user:u2", "s1", "u1")
    with pytest.raises(InvalidInput):
        check_own("asset:../x", "s1", "u1")


async def test_broadcaster_wakes_only_the_replicas_of_that_studio():
    hub = Broadcaster(per_studio=3)
    one = asyncio.create_task(hub.wait_events("r1", {"s1": 0}, 5))
    two = asyncio.create_task(hub.wait_events("r2", {"s2": 0}, 0.3))
    await asyncio.sleep(0.05)
    await hub.publish(event(1))
    await hub.publish(event(1))  # a retried publish is not stored twice
    assert [e["seq"] for e in (await one)["events"]] == [1]
    assert (await two)["events"] == []  # timed out: nothing of s2
    for seq in (3, 2, 4, 5):
        await hub.publish(event(seq))
    ready = await hub.wait_events("r1", {"s1": 1}, 0)
    assert [e["seq"] for e in ready["events"]] == [3, 4, 5]  # ordered, the newest three
    assert (await hub.stats())["replicas"] == {"r1": ["s1"], "r2": ["s2"]}


async def test_feed_hands_on_in_order_and_fills_gaps_from_the_log():
    log, source = FakeLog(), Switchable()
    feed = Feed(log, source, "r1", poll_timeout_s=0.2, safety_net_s=60)  # type: ignore[arg-type]
    sink = Sink()
    log.store(1, 2)
    assert await feed.join(sink) == 2
    async with running(feed):
        first, second, third = log.store(3, 4, 5)
        await source.current.publish(first)
        await source.current.publish(third)  # 4 was stored but its publish was lost
        assert await sink.until(3) == [3, 4, 5]
        await source.current.publish(second)  # late: already handed on
        late = log.store(6)[0]
        await source.current.publish(late)
        assert await sink.until(4) == [3, 4, 5, 6]


async def test_feed_catches_up_after_a_broadcaster_restart_or_outage():
    log, source = FakeLog(), Switchable()
    feed = Feed(log, source, "r1", poll_timeout_s=0.2, safety_net_s=60)  # type: ignore[arg-type]
    sink = Sink()
    await feed.join(sink)
    async with running(feed):
        await source.current.publish(log.store(1)[0])
        assert await sink.until(1) == [1]
        log.store(2, 3)  # stored while the broadcaster died: never published
        source.current = Broadcaster()  # restarted: empty, with a new epoch
        assert await sink.until(3) == [1, 2, 3]
        source.down = True
        await asyncio.sleep(0.3)
        log.store(4)
        source.down = False
        assert await sink.until(4) == [1, 2, 3, 4]


async def test_feed_follows_studios_joining_and_leaving():
    log, source = FakeLog(), Switchable()
    feed = Feed(log, source, "r1", poll_timeout_s=5, safety_net_s=60)  # type: ignore[arg-type]
    async with running(feed):
        first = Sink("s1")
        await feed.join(first)
        await asyncio.sleep(0.05)
        second = Sink("s2")
        await feed.join(second)  # the long poll is asked again with s2 in it
        await source.current.publish(log.store(1, studio="s2")[0])
        assert await second.until(1) == [1]
        feed.leave(first)
        assert "s1" not in feed.cursors and feed.cursor("s2") == 1


def test_throttles():
    now = [0.0]
    progress = ProgressThrottle(1.0, clock=lambda: now[0])
    assert progress.allow("job:1") and not progress.allow("job:1")
    assert progress.allow("job:2")
    now[0] = 1.0
    assert progress.allow("job:1")
    assert progress.allow("job:1", final=True)  # the last report always passes
    bucket = TokenBucket(rate=2, burst=4, clock=lambda: now[0])
    assert [bucket.take() for _ in range(5)] == [True] * 4 + [False]
    now[0] += 0.5
    assert bucket.take() and not bucket.take()


def test_client_messages_are_typed_and_strict():
    assert isinstance(protocol.parse({"last_seq": 4}), protocol.Resume)
    comment = protocol.parse({"type": "asset.comment", "asset_id": "a1", "body": "hi",
                              "frame": 3, "id": "c1"})
    assert comment.create().frame == 3
    decision = protocol.parse({"type": "asset.request_changes", "asset_id": "a1"})
    assert decision.create().decision == "request_changes"
    for bad in ({"type": "asset.comment", "asset_id": "a1", "body": "x", "studio_id": "s"},
                {"type": "nope"}, {"type": "ping", "extra": 1}, [], 5):
        with pytest.raises(ValidationError):
            protocol.parse(bad)
    assert protocol.reference({"id": True}) is None and protocol.reference({"id": "x"}) == "x"
