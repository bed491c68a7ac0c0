"""Assets: create, read, list, edit and soft-delete, inside one studio.

The one module that writes the `assets` collection: versions, review decisions and render
publication change an asset through the methods below (its status through `move`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from pymongo import ReturnDocument

from pipelines.assets.lifecycle import Cause, sources
from pipelines.assets.models import AssetCreate, AssetPatch, AssetStatus, public_asset
from pipelines.assets.store import ASSETS
from pipelines.errors import Conflict, Forbidden, InvalidInput, NotFound
from pipelines.events.log import EventLog
from pipelines.identity import audit as audited
from pipelines.identity.audit import AuditLog
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action, can
from pipelines.identity.records import AUDIT
from pipelines.paging import fetch_page

SORTS = {"name": "name_lower", "created_at": "created_at", "updated_at": "updated_at"}
MAX_PAGE = 100


class AssetNotFound(NotFound):
    code = "asset_not_found"


def may_edit(principal: Principal, asset: dict[str, Any]) -> bool:
    if can(principal.role, Action.ASSET_EDIT_ANY):
        return True
    return asset["owner_id"] == principal.user_id and can(principal.role, Action.ASSET_EDIT_OWN)


class AssetService:
    def __init__(self, db, events: EventLog, clock: Callable[[], float] = time.time):
        self.assets = db[ASSETS]
        self.events = events
        self.clock = clock
        self.audit = AuditLog(db[AUDIT], clock)

    def _now(self) -> float:
        return self.clock()

    async def get_doc(self, principal: Principal, asset_id: str) -> dict[str, Any]:
        """The asset of the caller's studio, or 404 (also for another studio's asset)."""
        doc = await self.assets.find_one(
            {"_id": asset_id, "studio_id": principal.studio_id, "deleted": False}
        )
        if doc is None:
            raise AssetNotFound("no such asset")
        return doc

    async def editable_doc(self, principal: Principal, asset_id: str) -> dict[str, Any]:
        doc = await self.get_doc(principal, asset_id)
        if not may_edit(principal, doc):
            raise Forbidden("only the owner, a producer or an admin may change this asset")
        return doc

    async def create(self, principal: Principal, body: AssetCreate) -> dict[str, Any]:
        now = self._now()
        doc = {
            "_id": uuid.uuid4().hex, "studio_id": principal.studio_id, "name": body.name,
            "name_lower": body.name.casefold(), "kind": body.kind.value,
            "description": body.description, "tags": body.tags,
            "status": AssetStatus.DRAFT.value, "owner_id": principal.user_id,
            "current_version": None, "version_count": 0, "created_at": now, "updated_at": now,
            "deleted": False, "purged": False,
        }
        await self.assets.insert_one(doc)
        await self.events.append(principal.studio_id, "asset.created", f"asset:{doc['_id']}",
                                 {"asset": public_asset(doc), "by": principal.user_id})
        await self.audit.record(principal.studio_id, audited.ASSET_CREATED,
                                actor=principal.actor(), target={"type": "asset", "id": doc["_id"]},
                                details={"name": doc["name"], "kind": doc["kind"]})
        return public_asset(doc)

    async def update(self, principal: Principal, asset_id: str, patch: AssetPatch) -> dict:
        doc = await self.editable_doc(principal, asset_id)
        changes = patch.model_dump(exclude_unset=True, exclude_none=True, mode="json")
        if not changes:
            raise InvalidInput("nothing to change", code="empty_patch")
        query: dict[str, Any] = {"_id": doc["_id"], "studio_id": principal.studio_id,
                                 "deleted": False}
        if "status" in changes:
            query["status"] = {"$in": sources(Cause.EDIT, AssetStatus(changes["status"]))}
        if "name" in changes:
            changes["name_lower"] = changes["name"].casefold()
        changes["updated_at"] = self._now()
        updated = await self.assets.find_one_and_update(
            query, {"$set": changes}, return_document=ReturnDocument.AFTER)
        if updated is None:
            raise AssetNotFound("no such asset")
        return public_asset(updated)

    async def delete(self, principal: Principal, asset_id: str) -> None:
        """Soft delete; the janitor removes the stored objects in the background."""
        doc = await self.editable_doc(principal, asset_id)
        if doc["status"] == AssetStatus.APPROVED.value and not can(
            principal.role, Action.ASSET_EDIT_ANY
        ):
            raise Conflict("an approved asset can only be deleted by a producer or admin",
                           code="asset_approved")
        await self.assets.update_one(
            {"_id": doc["_id"], "studio_id": principal.studio_id},
            {"$set": {"deleted": True, "deleted_at": self._now(), "deleted_by": principal.user_id}},
        )
        await self.audit.record(principal.studio_id, audited.ASSET_DELETED,
                                actor=principal.actor(), target={"type": "asset", "id": doc["_id"]},
                                details={"name": doc["name"], "status": doc["status"]})

    async def move(self, studio_id: str, asset_id: str, to: AssetStatus, cause: Cause, *,
                   version: int | None = None) -> dict[str, Any] | None:
        """The asset's status → `to`, if `cause` may move it there from where it is (and
        `version` is still its current one); the asset after, or None when it may not."""
        query: dict[str, Any] = {"_id": asset_id, "studio_id": studio_id, "deleted": False,
                                 "status": {"$in": sources(cause, to)}}
        if version is not None:
            query["current_version"] = version
        return await self.assets.find_one_and_update(
            query, {"$set": {"status": to.value, "updated_at": self._now()}},
            return_document=ReturnDocument.AFTER)

    async def next_version_number(self, studio_id: str, asset_id: str) -> dict[str, Any] | None:
        """Counts one more version, atomically; None if the asset is approved (its versions
        are frozen) or gone. The asset after."""
        return await self.assets.find_one_and_update(
            {"_id": asset_id, "studio_id": studio_id, "deleted": False,
             "status": {"$ne": AssetStatus.APPROVED.value}},
            {"$inc": {"version_count": 1}}, return_document=ReturnDocument.AFTER)

    async def set_current_version(self, asset_id: str, number: int) -> None:
        await self.assets.update_one({"_id": asset_id}, {"$set": {
            "current_version": number, "updated_at": self._now()}})

    async def deleted_unpurged(self, batch: int) -> list[dict[str, Any]]:
        return await self.assets.find({"deleted": True, "purged": False}).limit(batch).to_list()

    async def claim_purge(self, asset_id: str) -> bool:
        """Marks a deleted asset purged; False if another janitor did first."""
        return await self.assets.find_one_and_update(
            {"_id": asset_id, "purged": False}, {"$set": {"purged": True}}) is not None

    async def list(self, principal: Principal, *, limit: int, cursor: str | None,
                   sort: str = "-created_at", kind: str | None = None,
                   status: str | None = None, tag: str | None = None,
                   owner: str | None = None, name_prefix: str | None = None) -> dict:
        field = sort.lstrip("-")
        if field not in SORTS:
            raise InvalidInput(f"sort must be one of {sorted(SORTS)} (prefix - for descending)",
                               code="invalid_sort")
        query: dict[str, Any] = {"studio_id": principal.studio_id, "deleted": False}
        for key, value in (("kind", kind), ("status", status), ("tags", tag),
                           ("owner_id", owner)):
            if value is not None:
                query[key] = value
        if name_prefix:
            prefix = name_prefix.casefold()
            query["name_lower"] = {"$gte": prefix, "$lt": prefix + "\U0010ffff"}
        docs, next_cursor = await fetch_page(
            self.assets, query, SORTS[field], limit=limit, cursor=cursor,
            descending=sort.startswith("-"), max_limit=MAX_PAGE,
        )
        return {"items": [public_asset(d) for d in docs], "next_cursor": next_cursor}
