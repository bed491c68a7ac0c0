"""The one verified completion every upload ends in, and reading versions back.

`Versions` is the one writer of the `asset_versions` collection (previews and render
publication record through it too)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import ASCENDING

from pipelines.assets.content import SNIFF_BYTES, check_declared, sniff
from pipelines.assets.models import public_version
from pipelines.assets.service import AssetNotFound, AssetService
from pipelines.assets.store import VERSIONS
from pipelines.errors import Conflict, InvalidInput, NotFound
from pipelines.events.log import EventLog
from pipelines.identity import audit as audited
from pipelines.identity.models import Principal
from pipelines.storage import ObjectStore

log = logging.getLogger("farm.assets")

VersionHook = Callable[[dict[str, Any]], Awaitable[None]]


class AssetFrozen(Conflict):
    code = "asset_frozen"


class VersionNotFound(NotFound):
    code = "version_not_found"


class Sha256Mismatch(InvalidInput):
    code = "sha256_mismatch"


class Versions:
    """The `asset_versions` collection. A version is immutable once recorded, but for
    what the farm adds later: its previews, and which render job published it."""

    def __init__(self, db):
        self.collection = db[VERSIONS]

    async def insert(self, version: dict[str, Any]) -> None:
        await self.collection.insert_one(version)

    async def by_id(self, version_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": version_id})

    async def one(self, studio_id: str, asset_id: str, number: int) -> dict[str, Any] | None:
        return await self.collection.find_one(
            {"studio_id": studio_id, "asset_id": asset_id, "number": number})

    async def of_upload(self, studio_id: str, asset_id: str,
                        upload_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one(
            {"studio_id": studio_id, "asset_id": asset_id, "upload_id": upload_id})

    async def set_previews(self, studio_id: str, asset_id: str, number: int,
                           previews: dict[str, Any]) -> None:
        await self.collection.update_one(
            {"studio_id": studio_id, "asset_id": asset_id, "number": number},
            {"$set": {"previews": previews}})

    async def mark_published(self, version_id: str, previews: dict[str, Any],
                             job_id: str) -> bool:
        """Records the render job that published it, once: True for the caller that did."""
        result = await self.collection.update_one(
            {"_id": version_id, "render_job_id": {"$exists": False}},
            {"$set": {"previews": previews, "render_job_id": job_id}})
        return bool(result.modified_count)


class VersionRecorder:
    """Checks stored bytes (type by content, size, SHA-256) and records an immutable version."""

    def __init__(self, db, store: ObjectStore, assets: AssetService, events: EventLog,
                 on_version_created: VersionHook | None = None,
                 clock: Callable[[], float] = time.time):
        self.versions = db[VERSIONS]  # reads; writes go through `records`
        self.records = Versions(db)
        self.store = store
        self.assets = assets
        self.events = events
        self.on_version_created = on_version_created
        self.clock = clock

    async def verify(self, upload: dict[str, Any], size: int,
                     sha256: str | None) -> tuple[dict, str]:
        """Raise (leaving no version) unless the stored object is what was declared."""
        media = check_declared(upload.get("content_type"), sniff(await self.store.read_head(
            upload["key"], SNIFF_BYTES)))
        if size != upload["size"]:
            raise InvalidInput(f"stored {size} bytes, declared {upload['size']}",
                               code="size_mismatch")
        digest = sha256 or await self.store.sha256(upload["key"])
        if upload.get("sha256") and digest != upload["sha256"]:
            raise Sha256Mismatch("the file's SHA-256 does not match the declared one")
        return {"mime": media.mime, "family": media.family, "label": media.label}, digest

    async def record(self, upload: dict[str, Any], media: dict, sha256: str) -> dict[str, Any]:
        """Take the next number atomically; refused if the asset became approved or deleted."""
        asset = await self.assets.next_version_number(upload["studio_id"], upload["asset_id"])
        if asset is None:
            raise AssetFrozen("the asset is approved or gone; its current version is frozen")
        now = self.clock()
        version = {
            "_id": f"{asset['_id']}:{asset['version_count']}", "studio_id": asset["studio_id"],
            "asset_id": asset["_id"], "number": asset["version_count"], "key": upload["key"],
            "filename": upload["filename"], "size": upload["size"], "content_type": media["mime"],
            "media": media, "sha256": sha256, "uploaded_by": upload["user_id"],
            "upload_id": upload["_id"], "created_at": now, "previews": {},
        }
        await self.records.insert(version)
        await self.assets.set_current_version(asset["_id"], version["number"])
        await self.events.append(asset["studio_id"], "asset.version_created",
                                 f"asset:{asset['_id']}", {"version": public_version(version)})
        # By whoever uploaded it, or, for a render published by the farm, its submitter.
        await self.assets.audit.record(
            asset["studio_id"], audited.VERSION_UPLOADED,
            actor={"user_id": upload["user_id"], "kind": upload.get("via", "upload")},
            target={"type": "asset", "id": asset["_id"]},
            details={"version": version["number"], "filename": version["filename"],
                     "size": version["size"], "sha256": sha256})
        await self._hand_off(version)
        return version

    async def _hand_off(self, version: dict[str, Any]) -> None:
        if self.on_version_created is None:
            return
        try:
            await self.on_version_created(version)
        except Exception:  # the version is recorded; a failed hand-off is retried by ops
            log.exception("preview hand-off failed for %s", version["_id"])

    async def list(self, principal: Principal, asset_id: str) -> list[dict[str, Any]]:
        await self.assets.get_doc(principal, asset_id)
        cursor = self.versions.find(
            {"studio_id": principal.studio_id, "asset_id": asset_id}
        ).sort("number", ASCENDING)
        return [public_version(v) for v in await cursor.to_list()]

    async def _version(self, principal: Principal, asset_id: str,
                       number: int) -> dict[str, Any]:
        try:
            await self.assets.get_doc(principal, asset_id)
        except AssetNotFound:
            raise VersionNotFound("no such version") from None
        version = await self.versions.find_one(
            {"studio_id": principal.studio_id, "asset_id": asset_id, "number": number}
        )
        if version is None:
            raise VersionNotFound("no such version")
        return version

    async def preview_urls(self, principal: Principal, asset_id: str, number: int,
                           expires_s: int) -> dict[str, Any]:
        version = await self._version(principal, asset_id, number)
        previews = version.get("previews") or {}
        urls = {name: await self.store.presigned_get(key, expires_s)
                for name, key in (previews.get("keys") or {}).items()}
        return {"state": "ready" if urls else "pending", "urls": urls,
                "expires_in_s": expires_s, "probe": previews.get("probe"),
                "filmstrip": previews.get("filmstrip")}

    async def download_url(self, principal: Principal, asset_id: str, number: int,
                           expires_s: int) -> dict[str, Any]:
        version = await self._version(principal, asset_id, number)
        url = await self.store.presigned_get(version["key"], expires_s)
        return {"url": url, "expires_in_s": expires_s, "filename": version["filename"],
                "size": version["size"], "sha256": version["sha256"]}
