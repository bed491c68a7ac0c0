"""Jobs built in Python, and following a job live.

    job = LayeredJob("sh010 comp", priority=60)
    render = job.layer("render", ["render", "{first}", "{last}"], frames="1001-1100",
                       chunk_size=10)
    comp = job.layer("comp", ["comp", "{frame}"], frames="1001-1100",
                     depends_on=[depends_on(render, per_frame=True)])
    job.layer("dailies", ["mkdailies", "{output}"], depends_on=[comp])
    farm.submit(job, after=[earlier])

`follow` reads the job's room on the WebSocket; when the socket drops it reconnects with
the last `seq` it saw, so the events in between are replayed, not lost; when it cannot
connect it polls the job over HTTP instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets

from studio_farm._http import Session
from studio_farm.frames import parse_frames
from studio_farm.models import Job

FINAL_EVENTS = {"job.completed", "job.failed", "job.cancelled"}
Event = dict[str, Any]


@dataclass(frozen=True)
class Dependency:
    layer: str
    per_frame: bool = False


@dataclass
class LayerSpec:
    name: str
    command: list[str]
    frames: str | None = None
    chunk_size: int = 1
    requirements: dict[str, Any] | None = None
    depends_on: list[Dependency] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "command": self.command,
                               "chunk_size": self.chunk_size,
                               "depends_on": [{"layer": d.layer, "per_frame": d.per_frame}
                                              for d in self.depends_on]}
        if self.frames is not None:
            out["frames"] = self.frames
        if self.requirements is not None:
            out["requirements"] = self.requirements
        return out


def depends_on(layer: LayerSpec | str, per_frame: bool = False) -> Dependency:
    """A dependency on a layer: whole, or frame by frame."""
    return Dependency(layer if isinstance(layer, str) else layer.name, per_frame)


class LayeredJob:
    def __init__(self, name: str = "job", **common: Any):
        self.name, self.common = name, common
        self.layers: list[LayerSpec] = []

    def layer(self, name: str, command: list[str], *, frames: str | None = None,
              chunk_size: int = 1, requirements: dict[str, Any] | None = None,
              depends_on: list[Dependency | LayerSpec | str] | None = None) -> LayerSpec:
        if frames is not None:
            parse_frames(frames)  # a bad range is refused here, before any request
        deps = [d if isinstance(d, Dependency) else
                Dependency(d if isinstance(d, str) else d.name) for d in depends_on or []]
        spec = LayerSpec(name, list(command), frames, chunk_size, requirements, deps)
        self.layers.append(spec)
        return spec

    def body(self) -> dict[str, Any]:
        return {"kind": "layered", "name": self.name, **self.common,
                "layers": [layer.body() for layer in self.layers]}


def ws_url(api: str) -> str:
    return api.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/api/v1/ws"


@dataclass
class Follower:
    """Follows one job: `run` returns the job once it ended."""

    session: Session
    job_id: str
    on_event: Callable[[Event], Awaitable[None] | None] | None = None
    poll_s: float = 2.0
    last_seq: int | None = None
    reconnects: int = 0
    replayed: int = 0
    socket: Any = None

    async def job(self) -> Job:
        return Job.model_validate(await self.session.call("GET", f"/jobs/{self.job_id}"))

    async def run(self, timeout_s: float | None = None) -> Job:
        async with asyncio.timeout(timeout_s):
            failures = 0
            while True:
                job = await self.job()  # also refreshes an expired access token
                if job.done:
                    return job
                try:
                    ended = await self._listen()
                    failures = 0
                    if ended:
                        return await self.job()
                except (TimeoutError, OSError, websockets.WebSocketException):
                    failures += 1
                self.reconnects += 1
                if failures >= 3:  # no socket to be had: poll instead
                    await asyncio.sleep(self.poll_s)
                else:
                    await asyncio.sleep(min(0.5 * failures, 2.0))

    async def _listen(self) -> bool:
        """One socket's life; True once the job's final event came."""
        secret = self.session._headers().get("Authorization", "").removeprefix("Bearer ")
        async with websockets.connect(ws_url(self.session.url), open_timeout=10) as ws:
            self.socket = ws
            auth: Event = {"type": "auth", "token": secret}
            if self.last_seq is not None:
                auth["last_seq"] = self.last_seq
            await ws.send(json.dumps(auth))
            replaying = self.last_seq is not None
            await ws.send(json.dumps({"type": "subscribe", "room": f"job:{self.job_id}"}))
            async for raw in ws:
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "ping":
                    await ws.send(json.dumps({"type": "pong", "id": frame.get("id")}))
                    continue
                if kind in ("resumed", "resync", "hello", "ack"):
                    if kind == "hello" and self.last_seq is None:
                        self.last_seq = frame.get("seq")
                    replaying = replaying and kind not in ("resumed", "resync")
                    if kind == "resync":
                        self.last_seq = frame.get("seq")
                        if (await self.job()).done:
                            return True
                    continue
                seq = frame.get("seq")
                if not isinstance(seq, int) or (self.last_seq is not None
                                                and seq <= self.last_seq):
                    continue  # a duplicate (an ack and its event share a seq)
                self.last_seq = seq
                if frame.get("room") != f"job:{self.job_id}":
                    continue
                self.replayed += int(replaying)
                if self.on_event is not None:
                    result = self.on_event(frame)
                    if asyncio.iscoroutine(result):
                        await result
                if kind in FINAL_EVENTS:
                    return True
        return False

    async def drop(self) -> None:
        """Close the socket (tests, or a caller that wants a fresh one); `run` reconnects."""
        if self.socket is not None:
            with contextlib.suppress(Exception):
                await self.socket.close()
