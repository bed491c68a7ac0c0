"""Figures for producers and admins about their studio's farm use and review, computed in
the database over a window of days (docs/analytics.md). Read only; every figure is the
caller's studio's, except node utilisation, which is the shared farm's (counts only)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field
from pymongo import ASCENDING, IndexModel

from pipelines.assets.store import USAGE, VERSIONS
from pipelines.db import declare_indexes
from pipelines.farm.store import ATTEMPTS, JOBS, NODES, TASKS
from pipelines.review.store import DECISIONS

DAY_S = 86400.0
MAX_DECISIONS = 20_000  # a window's decisions read for the turnaround (people make them)
USAGE_GROUPS = {"day": None, "submitter": "$submitted_by", "job_kind": "$job_kind",
                "task_kind": "$kind"}
FAILURE_GROUPS = {"class": "$failure_class", "node": "$node_id"}
declare_indexes(DECISIONS, [IndexModel([("studio_id", ASCENDING), ("at", ASCENDING)],
                                       name="studio_at")])

declare_indexes(TASKS, [IndexModel([("studio_id", ASCENDING), ("state", ASCENDING),
                                    ("finished_s", ASCENDING)], name="studio_finished")])
declare_indexes(ATTEMPTS, [IndexModel([("studio_id", ASCENDING), ("finished_s", ASCENDING)],
                                      name="studio_finished")])


def _day(field: str) -> dict[str, Any]:
    """The day (days since the epoch, UTC) of an epoch-seconds field."""
    return {"$floor": {"$divide": [field, DAY_S]}}


class Analytics:
    def __init__(self, db, quota_bytes: int, clock: Callable[[], float] = time.time):
        self.tasks, self.jobs, self.attempts = db[TASKS], db[JOBS], db[ATTEMPTS]
        self.node_docs, self.usage_docs, self.versions = db[NODES], db[USAGE], db[VERSIONS]
        self.decisions = db[DECISIONS]
        self.quota_bytes, self.clock = quota_bytes, clock

    def _since(self, days: int) -> float:
        return self.clock() - days * DAY_S

    async def _rows(self, collection: Any, pipeline: list[dict[str, Any]]) -> list[dict]:
        return await (await collection.aggregate(pipeline)).to_list()

    async def usage(self, studio_id: str, group: str, days: int, limit: int,
                    offset: int) -> list[dict[str, Any]]:
        """Succeeded tasks in the window grouped by day, submitter or kind: tasks, frames,
        render hours (their run time) and core hours (run time x slots)."""
        key = USAGE_GROUPS[group] or _day("$finished_s")
        rows = await self._rows(self.tasks, [
            {"$match": {"studio_id": studio_id, "state": "succeeded",
                        "finished_s": {"$gte": self._since(days)}}},
            {"$group": {"_id": key, "tasks": {"$sum": 1},
                        "frames": {"$sum": {"$size": {"$ifNull": ["$frames", []]}}},
                        "render_s": {"$sum": {"$ifNull": ["$metrics.wall_s", 0]}},
                        "core_s": {"$sum": {"$multiply": [
                            {"$ifNull": ["$metrics.wall_s", 0]},
                            {"$ifNull": ["$requirements.slots", 1]}]}}}},
            {"$sort": {"_id": 1}}, {"$skip": offset}, {"$limit": limit}])
        if group == "day":
            jobs = {int(r["_id"]): r["n"] for r in await self._rows(self.jobs, [
                {"$match": {"studio_id": studio_id, "created_s": {"$gte": self._since(days)}}},
                {"$group": {"_id": _day("$created_s"), "n": {"$sum": 1}}}])}
        return [{"key": _day_name(r["_id"]) if group == "day" else (r["_id"] or "unknown"),
                 "tasks": r["tasks"], "frames": r["frames"],
                 "render_hours": round(r["render_s"] / 3600, 3),
                 "core_hours": round(r["core_s"] / 3600, 3),
                 **({"jobs_submitted": jobs.get(int(r["_id"]), 0)} if group == "day" else {})}
                for r in rows]

    async def failures(self, studio_id: str, group: str, days: int, limit: int,
                       offset: int) -> list[dict[str, Any]]:
        """Ended attempts in the window by failure class or node: how many, how many
        failed, and the failure rate."""
        window = {"studio_id": studio_id, "finished_s": {"$gte": self._since(days)}}
        key = FAILURE_GROUPS[group]
        failed = await self._rows(self.attempts, [
            {"$match": window | {"ok": False}},
            {"$group": {"_id": key, "failed": {"$sum": 1}}},
            {"$sort": {"failed": -1, "_id": 1}}, {"$skip": offset}, {"$limit": limit}])
        # The rate's denominator: every attempt of the node, or of the window for a class.
        totals = {r["_id"]: r["n"] for r in await self._rows(self.attempts, [
            {"$match": window},
            {"$group": {"_id": key if group == "node" else None, "n": {"$sum": 1}}}])}
        out = []
        for row in failed:
            attempts = totals.get(row["_id"] if group == "node" else None, 0)
            out.append({"key": row["_id"] or "unknown", "failed": row["failed"],
                        "attempts": attempts,
                        "failure_rate": round(row["failed"] / attempts, 4) if attempts else 0.0})
        return out

    async def nodes(self, days: int) -> list[dict[str, Any]]:
        """Each node listed now: its busy hours in the window (every studio's attempts) and
        the share of its slots they filled."""
        window_s = days * DAY_S
        busy = {r["_id"]: r for r in await self._rows(self.attempts, [
            {"$match": {"finished_s": {"$gte": self._since(days)}}},
            {"$group": {"_id": "$node_id", "busy_s": {"$sum": {"$ifNull": ["$wall_s", 0]}},
                        "attempts": {"$sum": 1}}}])}
        out = []
        for node in await self.node_docs.find({}, {"slots": 1, "name": 1}).sort(
                "_id", 1).to_list():
            used = busy.get(node["_id"], {})
            slots = max(node.get("slots") or 0.0, 1e-9)
            out.append({"node_id": node["_id"], "name": node.get("name", ""),
                        "attempts": used.get("attempts", 0),
                        "busy_hours": round(used.get("busy_s", 0.0) / 3600, 3),
                        "utilisation": round(min(1.0, used.get("busy_s", 0.0)
                                                 / (window_s * slots)), 4)})
        return out

    async def storage(self, studio_id: str) -> dict[str, Any]:
        used = await self.usage_docs.find_one({"_id": studio_id}) or {}
        counted = await self._rows(self.versions, [
            {"$match": {"studio_id": studio_id}},
            {"$group": {"_id": None, "versions": {"$sum": 1}, "bytes": {"$sum": "$size"}}}])
        total = counted[0] if counted else {"versions": 0, "bytes": 0}
        return {"used_bytes": int(used.get("bytes", 0)), "quota_bytes": self.quota_bytes,
                "versions": total["versions"], "version_bytes": int(total["bytes"] or 0)}

    async def review(self, studio_id: str, days: int) -> dict[str, Any]:
        """Decisions in the window and how long after its upload each version was decided
        (the first decision on each version counts)."""
        decisions = await self.decisions.find(
            {"studio_id": studio_id, "at": {"$gte": self._since(days)}},
            {"asset_id": 1, "version": 1, "at": 1}).limit(MAX_DECISIONS).to_list()
        first: dict[str, float] = {}
        for d in decisions:
            version_id = f"{d['asset_id']}:{d['version']}"  # asset_versions' _id
            first[version_id] = min(d["at"], first.get(version_id, d["at"]))
        created = {v["_id"]: v["created_at"] for v in await self.versions.find(
            {"_id": {"$in": list(first)}, "studio_id": studio_id},
            {"created_at": 1}).to_list()}
        waits = sorted(at - created[v] for v, at in first.items() if v in created)
        hours = [w / 3600 for w in waits]
        return {"decisions": len(decisions), "versions_decided": len(waits),
                "turnaround_hours": {
                    "median": round(statistics.median(hours), 3) if hours else None,
                    "p90": round(hours[int(0.9 * (len(hours) - 1))], 3) if hours else None,
                    "max": round(hours[-1], 3) if hours else None}}


def _day_name(days_since_epoch: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(int(days_since_epoch) * DAY_S))


# -- what the API answers -------------------------------------------------------------------
class UsageRow(BaseModel):
    key: str = Field(description="The day (YYYY-MM-DD, UTC), submitter id or kind.")
    tasks: int = Field(description="Tasks that succeeded.")
    frames: int
    render_hours: float = Field(description="Their run time.")
    core_hours: float = Field(description="Run time x farm slots.")
    jobs_submitted: int | None = Field(None, description="By day only.")


class FailureRow(BaseModel):
    key: str = Field(description="The failure class or the node id.")
    failed: int
    attempts: int = Field(description="Attempts of the node, or of the window for a class.")
    failure_rate: float


class NodeUseRow(BaseModel):
    node_id: str
    name: str
    attempts: int
    busy_hours: float
    utilisation: float = Field(description="Busy time over the window times its slots.")


class Rows(BaseModel):
    items: list[UsageRow] | list[FailureRow] | list[NodeUseRow]
    days: int


class StorageOut(BaseModel):
    used_bytes: int
    quota_bytes: int
    versions: int
    version_bytes: int


class Turnaround(BaseModel):
    median: float | None
    p90: float | None
    max: float | None


class ReviewOut(BaseModel):
    decisions: int
    versions_decided: int
    turnaround_hours: Turnaround = Field(description="From a version's upload to the first "
                                         "decision on it.")
    days: int
