"""A WebSocket test client for /api/v1/ws that behaves like a well-written frontend.

It answers the server's `ping` frames with `pong` (flow control), keeps every other frame
in order, and tells events (frames with a `seq` and a dotted `type`) from control frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

ORIGIN = "http://studio.example"

Frame = dict[str, Any]


def ws_url(api: str, query: str = "") -> str:
    return api.replace("http://", "ws://", 1) + "/api/v1/ws" + (f"?{query}" if query else "")


def is_event(frame: Frame) -> bool:
    return "seq" in frame and "." in frame.get("type", "")


class LiveClient:
    def __init__(self, ws: ClientConnection, hello: Frame):
        self.ws = ws
        self.hello = hello
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()
        self.closed: websockets.ConnectionClosed | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, api: str, token: str, *, last_seq: int | None = None,
                   origin: str | None = ORIGIN, via_message: bool = False) -> LiveClient:
        headers = {"Origin": origin} if origin else {}
        if via_message:
            ws = await connect(ws_url(api), additional_headers=headers)
            auth: Frame = {"type": "auth", "token": token}
            if last_seq is not None:
                auth["last_seq"] = last_seq
            await ws.send(json.dumps(auth))
        else:
            query = f"last_seq={last_seq}" if last_seq is not None else ""
            ws = await connect(ws_url(api, query), subprotocols=["bearer", token],
                               additional_headers=headers)
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "hello", hello
        return cls(ws, hello)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame.get("type") == "ping":
                    await self.ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
                else:
                    self.frames.put_nowait(frame)
        except websockets.ConnectionClosed as exc:
            self.closed = exc
        else:
            self.closed = self.ws.close_exc  # type: ignore[assignment]

    async def send(self, message: Frame) -> None:
        await self.ws.send(json.dumps(message))

    async def next(self, match: Callable[[Frame], bool] = lambda f: True,
                   within: float = 10.0) -> Frame:
        async def first() -> Frame:
            while True:
                frame = await self.frames.get()
                if match(frame):
                    return frame
        return await asyncio.wait_for(first(), within)

    async def reply(self, ref: str, within: float = 10.0) -> Frame:
        return await self.next(lambda f: f.get("id") == ref and f["type"] in ("ack", "error"),
                               within)

    async def events(self, count: int, within: float = 10.0) -> list[Frame]:
        return [await self.next(is_event, within) for _ in range(count)]

    async def quiet(self, seconds: float) -> list[Frame]:
        """Every frame that arrives within `seconds` (expected: none, or known ones)."""
        await asyncio.sleep(seconds)
        found = []
        while not self.frames.empty():
            found.append(self.frames.get_nowait())
        return found

    async def close_code(self, within: float = 10.0) -> int | None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._reader), within)
        return self.closed.rcvd.code if self.closed and self.closed.rcvd else None

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
