"""A running task's log: written to a file in the task's work dir as the task prints it,
shipped to object storage a chunk at a time while it runs (so the studio reads it live), and
stored whole when the attempt ends (where: pipelines/farm/log_keys.py).

Memory stays at one chunk whatever the task prints: the output goes to disk as it comes,
and chunks are read back from the file to be shipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from pipelines.errors import FarmError
from pipelines.farm.log_keys import chunk_prefix, log_key
from pipelines.storage import ObjectStore

log = logging.getLogger("farm.agent")

CHUNK_BYTES = 1 << 20
SHIP_EVERY_S = 0.5
LAST_LINE_CHARS = 300
TEXT = "text/plain; charset=utf-8"


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as file:
        file.seek(offset)
        return file.read(size)


class LiveLog:
    """`prefix`: the attempt's (log_keys.attempt_prefix); `on_line(text)` is told the last
    line printed when it changed, at most once per shipment."""

    def __init__(self, store: ObjectStore, prefix: str, path: Path,
                 on_line: Callable[[str], None], every_s: float = SHIP_EVERY_S):
        self.store, self.prefix, self.path = store, prefix, path
        self.on_line, self.every_s = on_line, every_s
        # Unbuffered: what `write` took is in the file at once, so a shipment never reads
        # back bytes still held in a buffer (it would find nothing to ship).
        self.file = path.open("ab", buffering=0)
        self.size = self.shipped = self.seq = 0
        self.shipping_tried = False
        self.last_line = self.told = ""

    # What runners write to (they append text, as they did to a list).
    def append(self, text: str) -> None:
        self.write(text.encode("utf-8", "replace"))

    def extend(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.append(text)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # an unbuffered write may take part of it
            view = view[self.file.write(view):]
        self.size += len(data)
        line = data.rstrip(b"\r\n").rsplit(b"\n", 1)[-1][-4 * LAST_LINE_CHARS:]
        if line.strip():
            self.last_line = line.decode("utf-8", "replace")[-LAST_LINE_CHARS:].strip()

    async def ship_forever(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.ship()
            except FarmError as exc:  # storage away: the file keeps it; the next try ships
                log.warning("task log not shipped yet: %s", exc.message)

    async def ship(self) -> None:
        self.tell()  # first: shipping a burst of output takes a while
        end = self.size  # what the task prints meanwhile goes in the next shipment
        while self.shipped < end:
            data = await asyncio.to_thread(_read_at, self.path, self.shipped,
                                           min(CHUNK_BYTES, end - self.shipped))
            if not data:
                return
            # Set before the PUT: one that fails, or is cut off, may still have landed.
            self.shipping_tried = True
            await self.store.put_bytes(f"{chunk_prefix(self.prefix)}{self.seq:08d}", data, TEXT)
            self.seq += 1
            self.shipped += len(data)

    def tell(self) -> None:
        if self.last_line != self.told:
            self.told = self.last_line
            self.on_line(self.last_line)

    async def finish(self) -> str | None:
        """Store the whole log as one object, then drop the chunks; the key, or None when
        storage refused it (the chunks shipped so far are what is left)."""
        self.file.close()
        try:
            await self.store.stream_file(log_key(self.prefix), str(self.path), TEXT)
        except FarmError:
            log.warning("task log not stored")
            return None
        if not self.shipping_tried:  # most short tasks: no listing to pay for
            return log_key(self.prefix)
        try:
            await self.store.remove_prefix(chunk_prefix(self.prefix))
        except FarmError:
            log.warning("task log chunks not removed")
        return log_key(self.prefix)
