"""Review of assets: threaded comments and decisions, each stored and then sent as an event.

Events (room `asset:<id>`, so also `studio:<id>`): `asset.commented`,
`asset.comment_edited`, `asset.comment_deleted`, `asset.approved`,
`asset.changes_requested`; a mentioned user gets `user.mentioned` in `user:<id>`.
Mutations return `(resource, seq)`: `seq` is the event's sequence number.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from pymongo import ReturnDocument

from pipelines.assets.lifecycle import Cause
from pipelines.assets.models import AssetStatus, public_asset
from pipelines.assets.service import AssetNotFound, AssetService
from pipelines.db import db_errors
from pipelines.errors import Conflict, Forbidden, InvalidInput, NotFound
from pipelines.events.log import EventLog
from pipelines.identity import audit as audited
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action, can
from pipelines.identity.records import USERS
from pipelines.paging import fetch_page
from pipelines.review.models import (
    CommentCreate,
    CommentPatch,
    DecisionCreate,
    DecisionKind,
    public_comment,
    public_decision,
)
from pipelines.review.store import COMMENTS, DECISIONS

MAX_PAGE = 200
_OUTCOME = {
    DecisionKind.APPROVE: (AssetStatus.APPROVED, Cause.APPROVAL, "asset.approved"),
    DecisionKind.REQUEST_CHANGES: (AssetStatus.CHANGES_REQUESTED, Cause.CHANGES_REQUESTED,
                                   "asset.changes_requested"),
}


class CommentNotFound(NotFound):
    code = "comment_not_found"


def authorize(principal: Principal, action: Action) -> None:
    if not can(principal.role, action, via_api_key=principal.via_api_key):
        raise Forbidden("your role may not do this", code="forbidden")


class ReviewService:
    def __init__(self, db, events: EventLog, assets: AssetService,
                 clock: Callable[[], float] = time.time):
        self.db = db
        self.comments = db[COMMENTS]
        self.decisions = db[DECISIONS]
        self.events = events
        self.assets = assets
        self.clock = clock

    @db_errors
    async def comment(self, principal: Principal, asset_id: str,
                      body: CommentCreate) -> tuple[dict[str, Any], int]:
        authorize(principal, Action.REVIEW_COMMENT)
        asset = await self.assets.get_doc(principal, asset_id)
        thread_id = await self._thread_of(principal, asset_id, body.parent_id)
        await self._check_mentions(principal, body.mentions)
        comment_id = uuid.uuid4().hex
        doc = {
            "_id": comment_id, "studio_id": principal.studio_id, "asset_id": asset_id,
            "version": body.version or asset.get("current_version"),
            "author_id": principal.user_id, "body": body.body, "frame": body.frame,
            "timecode": body.timecode.model_dump() if body.timecode else None,
            "annotation": body.annotation.model_dump(mode="json") if body.annotation else None,
            "parent_id": body.parent_id, "thread_id": thread_id or comment_id,
            "mentions": body.mentions, "created_at": self.clock(), "edited_at": None,
            "deleted": False,
        }
        await self.comments.insert_one(doc)
        shown = public_comment(doc)
        event = await self.events.append(principal.studio_id, "asset.commented",
                                         f"asset:{asset_id}", {"comment": shown})
        await self._notify(principal, shown, body.mentions)
        return shown, event["seq"]

    async def _thread_of(self, principal: Principal, asset_id: str,
                         parent_id: str | None) -> str | None:
        if parent_id is None:
            return None
        parent = await self.comments.find_one(
            {"_id": parent_id, "studio_id": principal.studio_id, "asset_id": asset_id,
             "deleted": False})
        if parent is None:
            raise InvalidInput("the parent comment is not a comment of this asset",
                               code="invalid_parent")
        return parent["thread_id"]

    async def _check_mentions(self, principal: Principal, mentions: list[str]) -> None:
        if not mentions:
            return
        found = await self.db[USERS].find(
            {"_id": {"$in": mentions}, "studio_id": principal.studio_id},
            {"active": 1}).to_list()
        # Truthiness, not `active: True` in the query: some servers return 1/0 for booleans.
        active = {user["_id"] for user in found if user.get("active")}
        unknown = [user_id for user_id in mentions if user_id not in active]
        if unknown:
            raise InvalidInput("mentions must name active users of the studio",
                               code="unknown_mention",
                               details=[{"loc": ["mentions"], "msg": user_id}
                                        for user_id in unknown])

    async def _notify(self, principal: Principal, comment: dict[str, Any],
                      mentions: list[str]) -> None:
        for user_id in mentions:
            if user_id == principal.user_id:
                continue
            await self.events.append(principal.studio_id, "user.mentioned", f"user:{user_id}", {
                "comment_id": comment["id"], "asset_id": comment["asset_id"],
                "by": principal.user_id, "excerpt": comment["body"][:200]})

    @db_errors
    async def list_comments(self, principal: Principal, asset_id: str, *, limit: int,
                            cursor: str | None, version: int | None = None) -> dict[str, Any]:
        """Oldest first; deleted comments are not listed (their replies are)."""
        await self.assets.get_doc(principal, asset_id)
        query: dict[str, Any] = {"studio_id": principal.studio_id, "asset_id": asset_id,
                                 "deleted": False}
        if version is not None:
            query["version"] = version
        docs, next_cursor = await fetch_page(self.comments, query, "created_at", limit=limit,
                                             cursor=cursor, max_limit=MAX_PAGE)
        return {"items": [public_comment(d) for d in docs], "next_cursor": next_cursor}

    async def _own_comment(self, principal: Principal, comment_id: str) -> dict[str, Any]:
        authorize(principal, Action.REVIEW_COMMENT)
        doc = await self.comments.find_one(
            {"_id": comment_id, "studio_id": principal.studio_id, "deleted": False})
        if doc is None:
            raise CommentNotFound("no such comment")
        try:
            await self.assets.get_doc(principal, doc["asset_id"])
        except AssetNotFound:
            raise CommentNotFound("no such comment") from None
        if doc["author_id"] != principal.user_id:
            raise Forbidden("only the author may change a comment", code="not_author")
        return doc

    @db_errors
    async def edit(self, principal: Principal, comment_id: str,
                   patch: CommentPatch) -> tuple[dict[str, Any], int]:
        doc = await self._own_comment(principal, comment_id)
        changes: dict[str, Any] = {"edited_at": self.clock()}
        if patch.body is not None:
            changes["body"] = patch.body
        if patch.annotation is not None:
            changes["annotation"] = patch.annotation.model_dump(mode="json")
        added: list[str] = []
        if patch.mentions is not None:
            await self._check_mentions(principal, patch.mentions)
            added = [m for m in patch.mentions if m not in doc.get("mentions", [])]
            changes["mentions"] = patch.mentions
        updated = await self.comments.find_one_and_update(
            {"_id": comment_id, "studio_id": principal.studio_id,
             "author_id": principal.user_id, "deleted": False},
            {"$set": changes}, return_document=ReturnDocument.AFTER)
        if updated is None:
            raise CommentNotFound("no such comment")
        shown = public_comment(updated)
        event = await self.events.append(principal.studio_id, "asset.comment_edited",
                                         f"asset:{doc['asset_id']}", {"comment": shown})
        await self._notify(principal, shown, added)
        return shown, event["seq"]

    @db_errors
    async def delete(self, principal: Principal, comment_id: str) -> int:
        doc = await self._own_comment(principal, comment_id)
        gone = await self.comments.find_one_and_update(
            {"_id": comment_id, "studio_id": principal.studio_id,
             "author_id": principal.user_id, "deleted": False},
            {"$set": {"deleted": True, "deleted_at": self.clock()}})
        if gone is None:
            raise CommentNotFound("no such comment")
        event = await self.events.append(
            principal.studio_id, "asset.comment_deleted", f"asset:{doc['asset_id']}",
            {"comment_id": comment_id, "asset_id": doc["asset_id"], "by": principal.user_id})
        return event["seq"]

    @db_errors
    async def decide(self, principal: Principal, asset_id: str,
                     body: DecisionCreate) -> tuple[dict[str, Any], int]:
        """Approve or request changes on the current version; moves the asset's status."""
        authorize(principal, Action.REVIEW_DECIDE)
        asset = await self.assets.get_doc(principal, asset_id)
        version = body.version or asset.get("current_version")
        if version is None:
            raise Conflict("the asset has no version to decide on", code="nothing_to_review")
        status, cause, event_type = _OUTCOME[body.decision]
        now = self.clock()
        updated = await self.assets.move(principal.studio_id, asset_id, status, cause,
                                         version=version)
        if updated is None:
            await self.assets.get_doc(principal, asset_id)  # 404 if it went away meanwhile
            raise Conflict(f"version {version} is not the asset's current version",
                           code="version_not_current")
        doc = {"_id": uuid.uuid4().hex, "studio_id": principal.studio_id,
               "asset_id": asset_id, "version": version, "decision": body.decision.value,
               "note": body.note, "by": principal.user_id, "status": status.value, "at": now}
        await self.decisions.insert_one(doc)
        shown = public_decision(doc)
        event = await self.events.append(principal.studio_id, event_type, f"asset:{asset_id}",
                                         {"decision": shown, "asset": public_asset(updated)})
        await self.assets.audit.record(
            principal.studio_id, audited.REVIEW_DECIDED, actor=principal.actor(),
            target={"type": "asset", "id": asset_id},
            details={"decision": body.decision.value, "version": version,
                     "status": status.value})
        return shown, event["seq"]
