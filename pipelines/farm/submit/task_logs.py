"""Reading a task's log, live or after the fact: the chunks a node ships while the attempt
runs, then the whole log it stores when the attempt ends (pipelines/farm/log_keys.py).

Following a log sends what exists, then polls for more until the attempt ended and its
whole log is stored; what was sent from chunks is not sent again from the whole log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pipelines.errors import FarmError, NotFound
from pipelines.farm.log_keys import attempt_prefix, chunk_prefix, log_key
from pipelines.farm.models import ACTIVE
from pipelines.farm.store import FarmStore
from pipelines.storage import ObjectStore

POLL_S = 0.25
# After its attempt ended, a follower waits this long for the whole log (the node stores it
# before it reports the end, so only a storage failure leaves it missing).
SETTLE_S = 10.0


class LogNotFound(NotFound):
    code = "log_not_found"


def task_prefix(task: dict[str, Any], attempt: int) -> str:
    return attempt_prefix(task["studio_id"], task["job_id"], task["_id"], attempt)


class TaskLogs:
    def __init__(self, store: ObjectStore, farm: FarmStore, poll_s: float = POLL_S):
        self.store, self.farm, self.poll_s = store, farm, poll_s

    def attempt(self, task: dict[str, Any], wanted: int | None) -> int:
        """The attempt asked for (default: the latest); 404 when there is none."""
        attempt = task["attempt"] if wanted is None else wanted
        if task["attempt"] == 0 or not 1 <= attempt <= task["attempt"]:
            raise LogNotFound("no log: that attempt of the task has not started"
                              if task["attempt"] else "no log yet: the task has not started")
        return attempt

    async def read(self, task: dict[str, Any], attempt: int,
                   follow: bool) -> AsyncIterator[bytes]:
        prefix = task_prefix(task, attempt)
        sent = next_seq = 0
        ended_at: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            size = await self._size(log_key(prefix))
            if size is not None:
                if sent < size:  # what the chunks already gave is not sent again
                    async for data in self.store.chunks(log_key(prefix), sent):
                        yield data
                return
            # Chunks are numbered from 0: each is asked for by name until one is not there
            # yet (a listing may lag behind what the node just stored).
            while True:
                try:
                    data = await self.store.get_bytes(f"{chunk_prefix(prefix)}{next_seq:08d}")
                except FarmError:
                    break
                sent, next_seq = sent + len(data), next_seq + 1
                yield data
            if not follow:
                return
            if ended_at is None and not await self._running(task["_id"], attempt):
                ended_at = loop.time()
            if ended_at is not None and loop.time() - ended_at > SETTLE_S:
                return  # the node could not store it: the chunks are all there is
            await asyncio.sleep(self.poll_s)

    async def _size(self, key: str) -> int | None:
        try:
            return (await self.store.stat(key)).size
        except NotFound:
            return None

    async def _running(self, task_id: str, attempt: int) -> bool:
        doc = await self.farm.tasks.find_one({"_id": task_id}, {"state": 1, "attempt": 1})
        return doc is not None and doc["attempt"] == attempt and doc["state"] in ACTIVE
