"""The event log against the real database: contiguous per-studio numbers, retention."""

from __future__ import annotations

import asyncio
import uuid

from pipelines.events.log import EventLog


class Recorder:
    def __init__(self) -> None:
        self.published: list[dict] = []

    async def publish(self, event: dict) -> None:
        self.published.append(event)


class Broken:
    async def publish(self, event: dict) -> None:
        raise RuntimeError("broadcaster away")


async def test_concurrent_writers_never_skip_or_repeat_a_number(db):
    studio, other = uuid.uuid4().hex, uuid.uuid4().hex
    writers = [EventLog(db, publisher=Recorder()) for _ in range(4)]  # like four replicas

    async def write(log: EventLog, n: int) -> list[int]:
        done = []
        for i in range(n):
            doc = await log.append(studio, "test.tick", f"studio:{studio}", {"i": i})
            done.append(doc["seq"])
        return done

    results = await asyncio.gather(*(write(log, 25) for log in writers for _ in range(3)),
                                   writers[0].append(other, "test.tick", f"studio:{other}", {}))
    seqs = sorted(seq for result in results[:-1] for seq in result)
    assert seqs == list(range(1, 301))
    assert results[-1]["seq"] == 1  # every studio counts on its own
    stored = await writers[0].after(studio, 0, limit=1000)
    assert [doc["seq"] for doc in stored] == list(range(1, 301))
    published = sorted(e["seq"] for w in writers for e in w.publisher.published  # type: ignore
                       if e["studio_id"] == studio)
    assert published == seqs
    assert await writers[0].head(studio) == 300


async def test_stored_first_a_failed_publish_loses_nothing(db):
    studio = uuid.uuid4().hex
    log = EventLog(db, publisher=Broken())
    doc = await log.append(studio, "asset.created", f"asset:{studio}", {"x": 1})
    again = await EventLog(db).after(studio, 0)
    assert [d["seq"] for d in again] == [doc["seq"]] == [1]


async def test_the_live_and_the_replayed_event_read_the_same(db):
    from pipelines.events.log import public

    studio = uuid.uuid4().hex
    recorder = Recorder()
    await EventLog(db, publisher=recorder).append(studio, "job.progress", "job:j1", {"p": 0.5})
    stored = await EventLog(db).after(studio, 0, room=f"studio:{studio}")
    assert [public(d) for d in stored] == recorder.published
    assert recorder.published[0]["room"] == "job:j1"


async def test_retention_keeps_the_newest_events_and_numbers_go_on(db):
    studio = uuid.uuid4().hex
    clock = [1_000_000.0]
    log = EventLog(db, clock=lambda: clock[0])
    for i in range(130):
        clock[0] += 1
        await log.append(studio, "test.tick", f"studio:{studio}", {"i": i})
    assert await log.prune(max_count=100, studio_ids=[studio]) == 30
    assert (await log.oldest(studio), await log.head(studio)) == (31, 130)
    clock[0] += 3600
    assert await log.prune(max_age_s=60, studio_ids=[studio]) == 99  # the newest stays
    assert (await log.oldest(studio), await log.head(studio)) == (130, 130)
    nxt = await log.append(studio, "test.tick", f"studio:{studio}", {})
    assert nxt["seq"] == 131
