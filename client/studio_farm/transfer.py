"""Files to and from storage, straight to the S3 server with presigned URLs.

Uploads go in parts, several at a time, and are **resumable**: the session's id is kept in
a small state file (beside the file, or in `state_dir`), and a later `upload` of the same
file asks the API which parts arrived and sends only the missing ones. The file's SHA-256
is declared first and checked by the server when it records the version. Downloads write
`NAME.part` and continue it with a range request; the SHA-256 is checked at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import mimetypes
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from studio_farm._http import Session
from studio_farm.errors import FarmError, InvalidInput, NotFound, Unavailable

HASH_BLOCK = 1 << 20


@dataclass
class TransferReport:
    """What a transfer did: `parts_sent` counts only this call's parts (a resume sends
    the missing ones)."""

    bytes_total: int
    parts_total: int = 0
    parts_sent: int = 0
    bytes_sent: int = 0
    resumed: bool = False
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Progress:
    """A one-line bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, label: str, total: int, enabled: bool | None = None):
        self.label, self.total, self.done = label, max(1, total), 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.started = time.monotonic()

    def add(self, amount: int) -> None:
        self.done += amount
        if self.enabled:
            share = self.done / self.total
            rate = self.done / max(1e-6, time.monotonic() - self.started) / 2**20
            bar = "#" * int(share * 30)
            sys.stderr.write(f"\r{self.label} [{bar:<30}] {share:6.1%} {rate:7.1f} MiB/s")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def state_file(path: Path, asset_id: str, state_dir: Path | None) -> Path:
    name = f".{path.name}.{asset_id}.farm-upload.json"
    return (state_dir / name) if state_dir else path.with_name(name)


def _load(where: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(where.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _forget(where: Path) -> None:
    where.unlink(missing_ok=True)


async def _blocks(path: Path, offset: int, size: int) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(handle.seek, offset)
        left = size
        while left > 0:
            block = await asyncio.to_thread(handle.read, min(HASH_BLOCK, left))
            if not block:
                raise FarmError(f"{path} changed while it was being sent",
                                code="file_changed")
            left -= len(block)
            yield block
    finally:
        handle.close()


class Transfers:
    def __init__(self, session: Session, parallel: int = 4, timeout_s: float = 300.0,
                 attempts: int = 5):
        self.session = session
        self.parallel = parallel
        self.attempts = attempts
        # Presigned URLs carry their own signature: no API credential goes to storage.
        self.storage = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0))

    async def close(self) -> None:
        await self.storage.aclose()

    async def upload(self, path: str | os.PathLike[str], asset_id: str, *,
                     content_type: str | None = None, state_dir: Path | None = None,
                     progress: bool | None = None) -> tuple[dict[str, Any], TransferReport]:
        """The new version of `asset_id` made of the file (and what was sent)."""
        path = Path(path)
        stat = path.stat()
        report = TransferReport(stat.st_size)
        started = time.monotonic()
        where = state_file(path, asset_id, state_dir)
        status = await self._resume(where, stat)
        if status is None:
            sha256 = await asyncio.to_thread(sha256_of, path)
            status = await self.session.call("POST", f"/assets/{asset_id}/uploads", json={
                "filename": path.name, "size": stat.st_size, "sha256": sha256,
                "content_type": content_type or mimetypes.guess_type(path.name)[0]
                or "application/octet-stream"})
            where.write_text(json.dumps({"upload_id": status["id"], "size": stat.st_size,
                                         "mtime_ns": stat.st_mtime_ns}))
            missing = list(range(1, status["part_count"] + 1))
        else:
            report.resumed = True
            missing = status.get("missing_parts") or []
        report.parts_total = status["part_count"]
        bar = Progress(f"upload {path.name}", stat.st_size, progress)
        bar.add(stat.st_size - sum(self._part_size(status, n, stat.st_size) for n in missing))
        await self._send_parts(path, status, missing, report, bar)
        bar.close()
        try:
            version = await self.session.call("POST", f"/uploads/{status['id']}/complete")
        except InvalidInput as exc:
            # Refused content ends the session (its bytes are removed): nothing to resume.
            # Parts that do not match leave it open, for a run that sends them again.
            if exc.code != "parts_rejected":
                _forget(where)
            raise
        _forget(where)
        report.seconds = time.monotonic() - started
        return version, report

    async def _resume(self, where: Path, stat: os.stat_result) -> dict[str, Any] | None:
        """The open session this file was being sent in, if it is still open and the file
        did not change since."""
        state = _load(where)
        if state is None:
            return None
        if (state.get("size"), state.get("mtime_ns")) != (stat.st_size, stat.st_mtime_ns):
            _forget(where)
            return None
        try:
            status = await self.session.call("GET", f"/uploads/{state['upload_id']}")
        except NotFound:
            status = None
        if status is None or status["state"] != "open":
            _forget(where)
            return None
        return status

    @staticmethod
    def _part_size(status: dict[str, Any], number: int, size: int) -> int:
        offset = (number - 1) * status["part_size"]
        return max(0, min(status["part_size"], size - offset))

    async def _send_parts(self, path: Path, status: dict[str, Any], missing: list[int],
                          report: TransferReport, bar: Progress) -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for number in missing:
            queue.put_nowait(number)
        urls: dict[int, str] = {}
        lock = asyncio.Lock()

        async def url_of(number: int) -> str:
            async with lock:  # one page of URLs (up to 1000 parts) per call
                if number not in urls:
                    page = await self.session.call(
                        "GET", f"/uploads/{status['id']}/parts",
                        params={"from": number, "to": min(number + 999, status["part_count"])})
                    urls.update({p["part"]: p["url"] for p in page["part_urls"]})
            return urls[number]

        async def worker() -> None:
            while not queue.empty():
                number = queue.get_nowait()
                size = self._part_size(status, number, report.bytes_total)
                await self._put(await url_of(number), path, (number - 1) * status["part_size"],
                                size)
                report.parts_sent += 1
                report.bytes_sent += size
                bar.add(size)

        workers = [asyncio.create_task(worker()) for _ in range(min(self.parallel,
                                                                    len(missing)) or 1)]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()

    async def _put(self, url: str, path: Path, offset: int, size: int) -> None:
        """One part, streamed from the file a block at a time (memory stays at a block per
        part in flight, whatever the part size), with its length declared as S3 needs."""
        delay = 0.5
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self.storage.put(
                    url, content=_blocks(path, offset, size),
                    headers={"Content-Length": str(size)})
                if response.status_code < 300:
                    return
                problem = f"storage answered {response.status_code}"
                if response.status_code < 500:
                    raise FarmError(problem, code="part_refused", status=response.status_code)
            except httpx.TransportError as exc:  # a PUT of a part is safe to repeat
                problem = f"storage unreachable: {exc}"
            if attempt == self.attempts:
                raise Unavailable(problem, code="storage_unavailable")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def download(self, url: str, path: str | os.PathLike[str], *, size: int | None = None,
                       sha256: str | None = None,
                       progress: bool | None = None) -> TransferReport:
        """`url` to `path`, continuing a `path.part` left by an interrupted download."""
        path = Path(path)
        partial = path.with_name(path.name + ".part")
        have = partial.stat().st_size if partial.exists() else 0
        report = TransferReport(size or 0, resumed=have > 0)
        started = time.monotonic()
        headers = {"Range": f"bytes={have}-"} if have else {}
        bar = Progress(f"download {path.name}", size or 0, progress)
        bar.add(have)
        async with self.storage.stream("GET", url, headers=headers) as response:
            if response.status_code == 416:  # nothing left to fetch
                pass
            elif response.status_code not in (200, 206):
                raise FarmError(f"storage answered {response.status_code}",
                                code="download_failed", status=response.status_code)
            else:
                mode = "ab" if response.status_code == 206 else "wb"
                with partial.open(mode) as handle:
                    async for block in response.aiter_bytes(HASH_BLOCK):
                        handle.write(block)
                        report.bytes_sent += len(block)
                        bar.add(len(block))
        bar.close()
        if sha256 and await asyncio.to_thread(sha256_of, partial) != sha256:
            partial.unlink()
            raise FarmError("the downloaded file's SHA-256 does not match", code="sha256_mismatch")
        partial.replace(path)
        report.seconds = time.monotonic() - started
        return report
