"""File bytes as streams, held in bounded pieces whatever the file's size.

`exact_length` passes one part on as it arrives and refuses a part of the wrong length
before storage could accept it. `PartWriter` cuts a stream of unknown length (a simple
upload) into multipart parts as it arrives, holding at most one part.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from pipelines.errors import InvalidInput, PayloadTooLarge
from pipelines.storage import ObjectStore

# Bytes go to storage in writes of about this size (each one a short-lived copy): fewer,
# larger writes than the 64 KiB pieces a server reads a request body in.
SLICE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class IncomingFile:
    """A simple upload as it arrives: what the form said about it, and its bytes."""

    filename: str
    content_type: str | None
    chunks: AsyncIterable[bytes]
    size_hint: int | None = None  # an upper bound (the request's length), when known


@dataclass(frozen=True)
class Written:
    size: int
    sha256: str
    parts: list[tuple[int, str]]  # (number, etag), in order


async def exact_length(chunks: AsyncIterable[bytes], expected: int,
                       batch: int = SLICE_BYTES) -> AsyncIterator[bytes]:
    """Pass `chunks` on in pieces of about `batch` bytes, raising unless they add up to
    exactly `expected` bytes.

    What arrived last is held back until the source has ended, so a consumer that has been
    given `expected` bytes knows the source really stopped there: storage never completes
    a part whose sender sent more, or whose connection dropped.
    """
    pending: list[bytes] = []
    pending_size = seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > expected:
            raise PayloadTooLarge(f"this part must be {expected} bytes",
                                  code="part_size_mismatch")
        if pending_size >= batch:
            yield b"".join(pending)
            pending, pending_size = [], 0
        if chunk:
            pending.append(chunk)
            pending_size += len(chunk)
    if seen != expected:
        raise InvalidInput(f"this part must be {expected} bytes, got {seen}",
                           code="part_size_mismatch")
    if pending:
        yield b"".join(pending)


async def _drain(pieces: deque[bytes]) -> AsyncIterator[bytes]:
    """Held bytes in writes of about SLICE_BYTES, letting go of each once sent."""
    while pieces:
        batch, size = [], 0
        while pieces and size < SLICE_BYTES:
            batch.append(pieces.popleft())
            size += len(batch[-1])
        yield b"".join(batch)


class _OpenPart:
    """One part, sent to storage as its bytes arrive, declared full-size (`stream`), or
    collected and sent at its end when it is known to be the last, shorter part.

    A streamed part's bytes are also kept until it is whole: it may turn out to be the
    last part after all, and then it is sent again with its real length.
    """

    def __init__(self, store: ObjectStore, key: str, upload_id: str, number: int, size: int,
                 stream: bool):
        self.store, self.key, self.upload_id = store, key, upload_id
        self.number, self.size = number, size
        self.kept: list[bytes] = []
        self.held = 0
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._sent = asyncio.Event()
        self._task = asyncio.create_task(store.stream_part(
            key, upload_id, number, self._body(), size)) if stream else None

    async def _body(self) -> AsyncIterator[bytes]:
        batch: list[bytes] = []
        size = 0
        while (piece := await self._queue.get()) is not None:
            batch.append(piece)
            size += len(piece)
            if size >= SLICE_BYTES:
                yield b"".join(batch)
                batch, size = [], 0
        if batch:
            yield b"".join(batch)
        self._sent.set()

    async def feed(self, piece: bytes) -> None:
        if self._task is not None and self._task.done():
            await self._task  # storage refused early: say so now, not at the part's end
        self.kept.append(piece)
        self.held += len(piece)
        if self._task is not None:
            self._queue.put_nowait(piece)

    async def hand_over(self) -> None:
        """The part is whole: return once every byte is on its way to storage (its answer
        comes later, `answer`), so the next part can start meanwhile. A whole part is
        never sent again, so its kept bytes go."""
        kept, self.kept = self.kept, []
        if self._task is None:
            self._task = asyncio.create_task(self.store.stream_part(
                self.key, self.upload_id, self.number, _drain(deque(kept)), self.held))
            return
        self._queue.put_nowait(None)
        sent = asyncio.ensure_future(self._sent.wait())
        await asyncio.wait([sent, self._task], return_when=asyncio.FIRST_COMPLETED)
        sent.cancel()
        if self._task.done():
            self._task.result()  # raises what storage answered early

    async def answer(self) -> str:
        """Storage's ETag for a part handed over."""
        assert self._task is not None
        return await self._task

    async def finish_short(self) -> str:
        """The stream ended inside this part: its request (if any) is cut off, and the kept
        bytes are sent with their real length."""
        await self.abandon()
        pieces, self.kept = deque(self.kept), []
        return await self.store.stream_part(self.key, self.upload_id, self.number,
                                            _drain(pieces), self.held)

    async def abandon(self) -> None:
        """End the request before its last byte: storage keeps nothing of the part."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.wait([self._task])
        if not self._task.cancelled():
            self._task.exception()  # retrieved: an abandoned request's error is expected
        self._task = None


class PartWriter:
    """Stores a stream of unknown length as the parts of one multipart upload.

    Each part streams to storage while it arrives and is kept until it is whole (in case
    it is the last, shorter one), so about one part is held; the next part starts as soon
    as every byte of this one is on its way. With an upper bound on what is left (from
    the request's length), a part that must be the last is collected and sent once.
    """

    def __init__(self, store: ObjectStore, key: str, upload_id: str, part_size: int,
                 limit: int):
        self.store = store
        self.key = key
        self.upload_id = upload_id
        self.part_size = part_size
        self.limit = limit
        self.parts: list[tuple[int, str]] = []
        self._part: _OpenPart | None = None  # filling
        self._whole: _OpenPart | None = None  # handed over, storage's answer to come

    async def write(self, chunks: AsyncIterable[bytes],
                    size_hint: int | None = None) -> Written:
        hasher, size = hashlib.sha256(), 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > self.limit:
                    raise PayloadTooLarge(f"simple uploads stop at {self.limit} bytes; use a "
                                          "multipart upload")
                hasher.update(chunk)
                await self._take(chunk, None if size_hint is None else size_hint - size)
            if size == 0:
                raise InvalidInput("the file is empty", code="empty_file")
            await self._settle()
            if self._part is not None:
                self.parts.append((self._part.number, await self._part.finish_short()))
                self._part = None
        except BaseException:
            for part in (self._part, self._whole):
                if part is not None:
                    await part.abandon()
            raise
        return Written(size, hasher.hexdigest(), self.parts)

    async def _take(self, chunk: bytes, after: int | None) -> None:
        """Add `chunk` to the parts; `after`: at most this many bytes follow it, if known."""
        while chunk:
            if self._part is None:
                last = after is not None and after + len(chunk) < self.part_size
                number = len(self.parts) + (self._whole is not None) + 1
                self._part = _OpenPart(self.store, self.key, self.upload_id, number,
                                       self.part_size, stream=not last)
            room = self.part_size - self._part.held
            piece, chunk = (chunk[:room], chunk[room:]) if len(chunk) > room else (chunk, b"")
            await self._part.feed(piece)
            if self._part.held == self.part_size:
                await self._part.hand_over()
                await self._settle()
                self._whole, self._part = self._part, None

    async def _settle(self) -> None:
        if self._whole is not None:
            whole, self._whole = self._whole, None
            self.parts.append((whole.number, await whole.answer()))
