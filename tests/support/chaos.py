"""A job under fault, watched as its users watch it, and what every fault must leave intact.

The job renders frames with a command that notes when each run of a frame starts and ends
(every node of a test cluster shares this machine's disk), so a test sees work the farm
forgot and ran again, which job states alone would hide. A frontend's socket follows the
studio and reconnects with the last sequence it saw, as docs/realtime.md tells clients to.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.farm import expected_frames, outputs, submit, tasks_of, wait_job
from tests.support.live import LiveClient, is_event

FRAMES = range(1, 17)


async def until(check: Callable[[], Awaitable[object]], timeout_s: float = 120,
                every_s: float = 0.2) -> float:
    """Poll `check` until it is truthy; returns the seconds that took."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout_s, f"not so after {timeout_s} s"
        await asyncio.sleep(every_s)
    return time.monotonic() - started


def marked_frames(runs: Path, seconds: float) -> list[str]:
    """Write each frame after `seconds`, noting the start and the end of every run."""
    def note(kind: str) -> str:
        return f'echo "{kind} {{frame}} $(date +%s.%N)" >> {runs}'

    return ["/bin/sh", "-c", f"{note('start')}; sleep {seconds}; "
            f"echo {{frame}} > {{output}}/frame_{{frame:04d}}.txt; {note('end')}"]


def runs_of(path: Path) -> list[tuple[str, int, float]]:
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return sorted(((kind, int(frame), float(at)) for kind, frame, at in lines),
                  key=lambda run: run[2])


def ended_frames(path: Path) -> set[int]:
    return {frame for kind, frame, _ in runs_of(path) if kind == "end"}


def started_again(path: Path, excused: tuple[float, float] | None = None) -> list[int]:
    """Frames started again after a run of them had ended: finished work run twice.

    A run that ended inside `excused` (the moments before its own node or agent was
    killed, its result still on the way) is not counted: nobody could report it."""
    ended: set[int] = set()
    again = []
    for kind, frame, at in runs_of(path):
        if kind == "end" and not (excused and excused[0] <= at <= excused[1]):
            ended.add(frame)
        elif kind == "start" and frame in ended:
            again.append(frame)
    return again


@dataclass
class Watcher:
    """A frontend's socket on its studio room; `drop` and `reconnect` resume by sequence."""

    url: str
    token: str
    seen: list[int] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    client: LiveClient | None = None
    _reader: asyncio.Task | None = None

    @property
    def last_seq(self) -> int:
        return max(self.seen, default=0)

    async def connect(self) -> None:
        self.client = await LiveClient.open(self.url, self.token, last_seq=self.last_seq)
        self._reader = asyncio.create_task(self._read(self.client))

    async def _read(self, client: LiveClient) -> None:
        while True:
            frame = await client.next(is_event, within=3600)
            self.seen.append(frame["seq"])
            self.types.append(frame["type"])

    async def drop(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self.client:
            with contextlib.suppress(Exception):
                await self.client.close()

    async def reconnect(self, timeout_s: float = 60) -> float:
        """Reconnect (retrying while the socket's server comes back); returns the wait."""
        await self.drop()
        started = time.monotonic()
        while True:
            try:
                await self.connect()
                return time.monotonic() - started
            except Exception:  # noqa: BLE001 - refused, reset or an upgrade refused while it starts
                if time.monotonic() - started > timeout_s:
                    raise
                await asyncio.sleep(0.3)

    async def wait_for(self, event_type: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while event_type not in self.types:
            assert time.monotonic() < deadline, f"no {event_type} event; saw {self.types}"
            await asyncio.sleep(0.2)


async def studio_log(http: httpx.AsyncClient, headers: dict, studio_id: str) -> list[int]:
    """Every sequence number the event log holds for the studio's room."""
    seqs: list[int] = []
    after = 0
    while True:
        page = await http.get("/api/v1/events", headers=headers, params={
            "room": f"studio:{studio_id}", "after": after, "limit": 500})
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        if not items:
            return seqs
        seqs += [e["seq"] for e in items]
        after = items[-1]["seq"]


@dataclass
class JobUnderFault:
    """One studio's frame job, its run notes and its watcher, for one fault."""

    http: httpx.AsyncClient
    settings: object
    studio: object
    runs: Path
    watcher: Watcher
    job: dict = field(default_factory=dict)

    @property
    def headers(self) -> dict:
        return self.studio.td.headers

    async def start(self, seconds: float = 1.0, **body: object) -> dict:
        await self.watcher.connect()
        self.job = await submit(self.http, self.headers, frames=f"{FRAMES[0]}-{FRAMES[-1]}",
                                chunk_size=1, command=marked_frames(self.runs, seconds), **body)
        return self.job

    async def until_frames_end(self, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while len(ended_frames(self.runs)) < count:
            assert time.monotonic() < deadline, f"only {len(ended_frames(self.runs))} ended"
            await asyncio.sleep(0.1)

    async def until_a_run_after(self, moment: float, kind: str = "start",
                                timeout_s: float = 120) -> float:
        """Seconds from `moment` (time.time) until a frame's run starts (or ends) after it:
        a run that starts needed a lease, so the farm is working again."""
        deadline = time.monotonic() + timeout_s
        while True:
            later = [at for k, _, at in runs_of(self.runs) if k == kind and at > moment]
            if later:
                return min(later) - moment
            assert time.monotonic() < deadline, "no frame finished after the fault"
            await asyncio.sleep(0.1)

    async def assert_intact(self, db, excused: tuple[float, float] | None = None) -> dict:
        """No job lost, no frame missing or made twice, nothing left running, finished
        work never run again, and no event missing for the reconnected socket."""
        done = await wait_job(self.http, self.headers, self.job["id"], timeout_s=180)
        assert done["status"] == "completed", done
        tasks = await tasks_of(self.http, self.headers, self.job["id"])
        assert {t["state"] for t in tasks} == {"succeeded"}
        assert outputs(self.settings, self.studio.studio_id, self.job["id"]) == \
            expected_frames(FRAMES)
        assert started_again(self.runs, excused) == []

        async def settled() -> bool:  # the studio's other work too (an upload's previews)
            return not await db["tasks"].count_documents(
                {"studio_id": self.studio.studio_id, "state": {"$in": ["leased", "running"]}})

        await until(settled, timeout_s=60)
        await self.watcher.wait_for("job.completed")
        logged = await studio_log(self.http, self.studio.admin.headers, self.studio.studio_id)
        assert set(logged) <= set(self.watcher.seen), sorted(set(logged) - set(self.watcher.seen))
        assert len(self.watcher.seen) == len(set(self.watcher.seen)), "an event came twice"
        await self.watcher.drop()
        return done
