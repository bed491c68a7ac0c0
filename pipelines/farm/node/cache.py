"""Each node's cache of task inputs (versions, scenes), by SHA-256: fetched once per node
however many tasks need them, evicted least-used first beyond its size."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from pipelines.storage import ObjectStore

log = logging.getLogger("farm.agent")
STALE_DOWNLOAD_S = 600.0  # a partial download untouched this long belongs to no one


class InputCache:
    """Inputs downloaded once per node, keyed by content hash; concurrent asks share one
    download, and a file appears under its final name only once complete.

    Bounded: after a download, the least recently used files beyond `max_bytes` are
    removed, except those a running task holds (`use`). A single input larger than the
    budget is kept while in use and goes at the next download.
    """

    def __init__(self, store: ObjectStore, directory: Path, max_bytes: int = 10 * 2**30):
        self.store = store
        self.directory = directory
        self.max_bytes = max_bytes
        self.locks: dict[str, asyncio.Lock] = {}
        self.in_use: Counter[str] = Counter()
        # Order of use in this process (file times are too coarse to order uses a few
        # milliseconds apart); files from before a restart rank by their time, below these.
        self.used: dict[str, int] = {}
        self._uses = itertools.count(1)

    @contextlib.asynccontextmanager
    async def use(self, key: str, sha256: str) -> AsyncIterator[tuple[Path, bool]]:
        """The local file while the block runs, and whether this call downloaded it."""
        path, downloaded = await self.acquire(key, sha256)
        try:
            yield path, downloaded
        finally:
            self.release(sha256)

    def release(self, sha256: str) -> None:
        self.used[sha256] = next(self._uses)  # a long render used its scene until now
        self.in_use[sha256] -= 1
        if self.in_use[sha256] <= 0:
            del self.in_use[sha256]

    async def acquire(self, key: str, sha256: str) -> tuple[Path, bool]:
        """The local file, held until `release`, and whether this call downloaded it."""
        path = self.directory / sha256
        async with self.locks.setdefault(sha256, asyncio.Lock()):
            self.used[sha256] = next(self._uses)
            if path.exists():
                os.utime(path)
                self.in_use[sha256] += 1
                return path, False
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = self.directory / f".{sha256}.{uuid.uuid4().hex}"
            download = asyncio.ensure_future(self.store.download(key, str(partial)))
            try:
                await asyncio.shield(download)
            except BaseException:
                # Cancelling does not stop the download's thread: its file goes when it ends.
                download.add_done_callback(functools.partial(_discard, partial))
                raise
            os.replace(partial, path)
            self.in_use[sha256] += 1
        try:
            self._evict()
        except OSError:
            log.warning("node cache not trimmed", exc_info=True)
        return path, True

    def _evict(self) -> None:
        entries = []
        for path in self.directory.iterdir():
            if path.name.startswith("."):  # a download in progress, or one that died
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - path.stat().st_mtime > STALE_DOWNLOAD_S:
                        path.unlink()
                continue
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                entries.append(((self.used.get(path.name, 0), stat.st_mtime), stat.st_size,
                                path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries, key=lambda entry: entry[0]):
            if total <= self.max_bytes:
                break
            lock = self.locks.get(path.name)
            if path.name in self.in_use or (lock is not None and lock.locked()):
                continue
            path.unlink(missing_ok=True)
            self.locks.pop(path.name, None)
            self.used.pop(path.name, None)
            total -= size


def _discard(partial: Path, download: asyncio.Future) -> None:
    if not download.cancelled():
        download.exception()  # retrieved: it was reported to the task that was cancelled
    partial.unlink(missing_ok=True)
