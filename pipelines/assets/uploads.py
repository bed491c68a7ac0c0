"""Upload sessions: direct multipart (presigned parts), proxied parts, and simple uploads.

All three end in `VersionRecorder.verify` + `record`. A session moves open → completing →
completed, or to aborted/rejected/expired; each move is one conditional update, so two
replicas can never complete (or abort) the same upload twice, and the studio's upload slot
is given back exactly once. A simple upload is `receiving` while its bytes stream in, and
the janitor reaps one left there (its process died) like an expired open upload.

Bytes arrive as async streams of chunks (`pipelines.assets.streams`): nothing here holds
more than one part of a proxied upload, or two parts of a simple one.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument

from pipelines.assets.models import (
    AssetStatus,
    CompletedPart,
    UploadDeclare,
    UploadState,
    safe_filename,
)
from pipelines.assets.quota import Quota
from pipelines.assets.service import AssetService
from pipelines.assets.store import UPLOADS
from pipelines.assets.streams import IncomingFile, PartWriter, Written, exact_length
from pipelines.assets.versions import AssetFrozen, VersionRecorder
from pipelines.clock import iso
from pipelines.errors import Conflict, FarmError, InvalidInput, NotFound, PayloadTooLarge
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action, can
from pipelines.storage import ObjectStore
from pipelines.text import is_visible_name

URLS_PER_PAGE = 100

log = logging.getLogger("farm.uploads")


class UploadNotFound(NotFound):
    code = "upload_not_found"


class PartsRejected(InvalidInput):
    code = "parts_rejected"


@dataclass(frozen=True)
class UploadLimits:
    part_size: int
    simple_limit: int
    max_bytes: int
    ttl_s: int
    url_ttl_s: int


def _check_file_name(filename: str, mode: str) -> None:
    """File names show in lists, logs and downloads like any name: nothing that hides or
    disguises text (a right-to-left override makes `gpj.exe` read `exe.jpg`)."""
    if is_visible_name(filename):
        return
    loc = ["body", "filename"] if mode == "multipart" else ["body", "file", "filename"]
    raise InvalidInput("the file name is blank or holds control, zero-width or "
                       "bidirectional-override characters", code="validation_failed",
                       details=[{"loc": loc, "msg": "hidden characters in a file name",
                                 "type": "string_pattern_mismatch"}])


def expected_sizes(size: int, part_size: int) -> list[int]:
    count = max(1, math.ceil(size / part_size))
    return [part_size] * (count - 1) + [size - part_size * (count - 1)]


class UploadService:
    def __init__(self, db, store: ObjectStore, assets: AssetService, quota: Quota,
                 versions: VersionRecorder, limits: UploadLimits,
                 clock: Callable[[], float] = time.time, bytes_url: str = ""):
        self.uploads = db[UPLOADS]
        self.store = store
        self.assets = assets
        self.quota = quota
        self.versions = versions
        self.limits = limits
        self.clock = clock
        self.bytes_url = bytes_url  # base URL of the upload gateway, told to clients

    def _now(self) -> float:
        return self.clock()

    async def _open_session(self, principal: Principal, asset_id: str, filename: str,
                            size: int, sha256: str | None, content_type: str | None,
                            mode: str) -> dict[str, Any]:
        asset = await self.assets.editable_doc(principal, asset_id)
        _check_file_name(filename, mode)
        if asset["status"] == AssetStatus.APPROVED.value:
            raise AssetFrozen("the asset is approved; its current version is frozen")
        if size > self.limits.max_bytes:
            raise PayloadTooLarge(f"files over {self.limits.max_bytes} bytes are not accepted")
        await self.quota.open_upload(principal.studio_id, size)
        upload_id = uuid.uuid4().hex
        now = self._now()
        return {
            "_id": upload_id, "studio_id": principal.studio_id, "asset_id": asset_id,
            "user_id": principal.user_id, "filename": filename, "size": size,
            "sha256": sha256, "content_type": content_type, "mode": mode,
            "key": f"studios/{principal.studio_id}/assets/{asset_id}/{upload_id}/"
                   f"{safe_filename(filename)}",
            "part_size": self.limits.part_size,
            "part_count": len(expected_sizes(size, self.limits.part_size)),
            "state": UploadState.OPEN.value, "created_at": now,
            "expires_at": now + self.limits.ttl_s,
        }

    async def begin(self, principal: Principal, asset_id: str, body: UploadDeclare) -> dict:
        session = await self._open_session(principal, asset_id, body.filename, body.size,
                                           body.sha256, body.content_type, "multipart")
        await self._start_multipart(session)
        last = min(session["part_count"], URLS_PER_PAGE)
        return self.public(session) | await self._urls(session, 1, last)

    async def _start_multipart(self, session: dict[str, Any]) -> None:
        """Open the storage side and record the session; on failure the slot goes back."""
        try:
            session["s3_upload_id"] = await self.store.create_multipart(
                session["key"], "application/octet-stream")
            await self.uploads.insert_one(session)
        except FarmError:
            await self.quota.close_upload(session["studio_id"])
            raise

    async def _get(self, principal: Principal, upload_id: str) -> dict[str, Any]:
        """The caller's own upload (or any of the studio's for producers and admins)."""
        session = await self.uploads.find_one(
            {"_id": upload_id, "studio_id": principal.studio_id})
        if session is None or not (session["user_id"] == principal.user_id
                                   or can(principal.role, Action.ASSET_EDIT_ANY)):
            raise UploadNotFound("no such upload")
        return session

    async def _get_open(self, principal: Principal, upload_id: str) -> dict[str, Any]:
        session = await self._get(principal, upload_id)
        if session["state"] != UploadState.OPEN:
            raise Conflict(f"the upload is {session['state']}", code="upload_not_open")
        if session["expires_at"] <= self._now():
            raise Conflict("the upload expired", code="upload_expired")
        return session

    async def _urls(self, session: dict, first: int, last: int) -> dict[str, Any]:
        urls = [{"part": n, "url": await self.store.presigned_part_url(
                    session["key"], session["s3_upload_id"], n, self.limits.url_ttl_s)}
                for n in range(first, last + 1)]
        return {"part_urls": urls, "urls_expire_in_s": self.limits.url_ttl_s}

    async def part_urls(self, principal: Principal, upload_id: str, first: int,
                        last: int | None) -> dict[str, Any]:
        session = await self._get_open(principal, upload_id)
        last = min(last or first + URLS_PER_PAGE - 1, session["part_count"])
        if not 1 <= first <= last or last - first >= 1000:
            raise InvalidInput(f"parts run from 1 to {session['part_count']}, up to 1000 "
                               "at a time", code="invalid_part_range")
        return await self._urls(session, first, last)

    def expected_part_size(self, session: dict[str, Any], number: int) -> int:
        sizes = expected_sizes(session["size"], session["part_size"])
        if not 1 <= number <= len(sizes):
            raise InvalidInput(f"part numbers run from 1 to {len(sizes)}", code="invalid_part")
        return sizes[number - 1]

    async def open_for_part(self, principal: Principal, upload_id: str, number: int) -> int:
        """Check a proxied part may be sent; return the exact size it must have."""
        session = await self._get_open(principal, upload_id)
        return self.expected_part_size(session, number)

    async def put_part(self, principal: Principal, upload_id: str, number: int,
                       chunks: AsyncIterable[bytes]) -> dict[str, Any]:
        """Stream one part to storage as it arrives; refused unless it has its exact size."""
        session = await self._get_open(principal, upload_id)
        expected = self.expected_part_size(session, number)
        etag = await self.store.stream_part(session["key"], session["s3_upload_id"], number,
                                            exact_length(chunks, expected), expected)
        return {"part": number, "size": expected, "etag": etag}

    async def status(self, principal: Principal, upload_id: str) -> dict[str, Any]:
        session = await self._get(principal, upload_id)
        out = self.public(session)
        if session["state"] in (UploadState.OPEN, UploadState.COMPLETING):
            stored = await self.store.list_parts(session["key"], session["s3_upload_id"])
            out["parts"] = [{"part": n, "size": size, "etag": etag} for n, size, etag in stored]
            have = {n for n, _, _ in stored}
            out["missing_parts"] = [n for n in range(1, session["part_count"] + 1)
                                    if n not in have]
        return out

    def _check_parts(self, session: dict, stored: list[tuple[int, int, str]],
                     listed: list[CompletedPart] | None) -> list[tuple[int, str]]:
        sizes = expected_sizes(session["size"], session["part_size"])
        problems = []
        if [n for n, _, _ in stored] != list(range(1, len(sizes) + 1)):
            missing = sorted(set(range(1, len(sizes) + 1)) - {n for n, _, _ in stored})
            problems.append({"problem": "parts_missing_or_extra", "missing": missing[:100],
                             "stored_count": len(stored), "declared_count": len(sizes)})
        wrong = [n for n, size, _ in stored if n <= len(sizes) and size != sizes[n - 1]]
        if wrong:
            problems.append({"problem": "part_sizes_differ", "parts": wrong[:100]})
        if sum(size for _, size, _ in stored) != session["size"]:
            problems.append({"problem": "total_differs", "declared": session["size"]})
        if listed is not None:
            theirs = [(p.part, p.etag.strip('"')) for p in listed]
            ours = [(n, etag.strip('"')) for n, _, etag in stored]
            if theirs != ours:
                problems.append({"problem": "listed_parts_differ",
                                 "hint": "list every part once, in order, with its ETag"})
        if problems:
            raise PartsRejected("the stored parts do not match the declaration",
                                details=problems)
        return [(n, etag) for n, _, etag in stored]

    async def _transition(self, session_id: str, source: UploadState, target: UploadState,
                          **extra: Any) -> dict[str, Any] | None:
        return await self.uploads.find_one_and_update(
            {"_id": session_id, "state": source.value},
            {"$set": {"state": target.value, **extra}}, return_document=ReturnDocument.AFTER)

    async def expired(self, now: float, batch: int) -> list[dict[str, Any]]:
        """Sessions past their time whose bytes may still be arriving: the janitor's."""
        return await self.uploads.find(
            {"state": {"$in": [UploadState.OPEN.value, UploadState.RECEIVING.value]},
             "expires_at": {"$lte": now}}).limit(batch).to_list()

    async def expire(self, session: dict[str, Any]) -> dict[str, Any] | None:
        """Claims an expired session (None if it completed or ended meanwhile)."""
        return await self._transition(session["_id"], UploadState(session["state"]),
                                      UploadState.EXPIRED)

    async def complete(self, principal: Principal, upload_id: str,
                       listed: list[CompletedPart] | None) -> dict[str, Any]:
        session = await self._get_open(principal, upload_id)
        stored = await self.store.list_parts(session["key"], session["s3_upload_id"])
        parts = self._check_parts(session, stored, listed)  # still open: client may fix
        if await self._transition(upload_id, UploadState.OPEN, UploadState.COMPLETING) is None:
            raise Conflict("the upload is already being completed", code="upload_not_open")
        try:
            await self.store.complete_multipart(session["key"], session["s3_upload_id"], parts)
        except FarmError:
            await self._transition(upload_id, UploadState.COMPLETING, UploadState.OPEN)
            raise
        return await self._finish(session, session["size"], None)

    async def _finish(self, session: dict[str, Any], size: int,
                      sha256: str | None) -> dict[str, Any]:
        """Verify and record; any refusal removes the object and gives the slot back."""
        try:
            media, digest = await self.versions.verify(session, size, sha256)
            version = await self.versions.record(session, media, digest)
        except FarmError as exc:
            await self.store.remove(session["key"])
            await self._transition(session["_id"], UploadState.COMPLETING,
                                   UploadState.REJECTED, reason=exc.code)
            await self.quota.close_upload(session["studio_id"])
            raise
        await self._transition(session["_id"], UploadState.COMPLETING, UploadState.COMPLETED,
                               version=version["number"], completed_at=self._now())
        await self.quota.close_upload(session["studio_id"], stored_bytes=size)
        return version

    async def abort(self, principal: Principal, upload_id: str) -> None:
        session = await self._get(principal, upload_id)
        if await self._transition(upload_id, UploadState.OPEN, UploadState.ABORTED) is None:
            raise Conflict(f"the upload is {session['state']}", code="upload_not_open")
        await self.release(session)

    async def release(self, session: dict[str, Any]) -> None:
        """Storage and quota of a session that ends without a version."""
        await self.store.abort_multipart(session["key"], session["s3_upload_id"])
        await self.quota.close_upload(session["studio_id"])

    async def simple(self, principal: Principal, asset_id: str,
                     incoming: IncomingFile) -> dict[str, Any]:
        """Stream a file of unknown length to storage in parts, then verify and record it."""
        limit = self.limits.simple_limit
        session = await self._open_session(
            principal, asset_id, incoming.filename, min(incoming.size_hint or limit, limit),
            None, incoming.content_type, "simple")
        session["state"] = UploadState.RECEIVING.value
        await self._start_multipart(session)
        writer = PartWriter(self.store, session["key"], session["s3_upload_id"],
                            self.limits.part_size, limit)
        try:
            written = await writer.write(incoming.chunks, incoming.size_hint)
        except Exception as exc:
            await self._drop_received(session, UploadState.RECEIVING, exc)
            raise
        return await self._complete_simple(session, written)

    async def _complete_simple(self, session: dict[str, Any], written: Written) -> dict:
        moved = await self._transition(session["_id"], UploadState.RECEIVING,
                                       UploadState.COMPLETING,
                                       size=written.size, part_count=len(written.parts))
        if moved is None:  # reaped by the janitor meanwhile: storage was released
            raise Conflict("the upload expired", code="upload_expired")
        try:
            await self.store.complete_multipart(moved["key"], moved["s3_upload_id"],
                                                written.parts)
        except FarmError as exc:
            await self._drop_received(moved, UploadState.COMPLETING, exc)
            raise
        return await self._finish(moved, written.size, written.sha256)

    async def _drop_received(self, session: dict[str, Any], state: UploadState,
                             exc: Exception) -> None:
        """A simple upload that ends without a version: storage, record and slot."""
        try:
            await self.store.abort_multipart(session["key"], session["s3_upload_id"])
        except FarmError as problem:  # the janitor cannot retry this one; say so
            log.warning("upload %s: multipart not aborted: %s", session["_id"], problem.message)
        reason = exc.code if isinstance(exc, FarmError) else "interrupted"
        if await self._transition(session["_id"], state, UploadState.REJECTED, reason=reason):
            await self.quota.close_upload(session["studio_id"])

    def public(self, session: dict[str, Any]) -> dict[str, Any]:
        out = {"id": session["_id"], "asset_id": session["asset_id"],
               "filename": session["filename"], "size": session["size"],
               "part_size": session["part_size"], "part_count": session["part_count"],
               "state": session["state"], "expires_at": iso(session["expires_at"]),
               "version": session.get("version")}
        if session["mode"] == "multipart":  # where to PUT parts: the upload gateway
            out["proxy_part_url_template"] = \
                f"{self.bytes_url}/api/v1/uploads/{session['_id']}/parts/{{part}}"
        return out
