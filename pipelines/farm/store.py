"""Jobs and tasks in MongoDB: the farm's desired state, written in batches."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from pipelines.db import declare_indexes
from pipelines.farm.models import ACTIVE, DONE, TaskState

JOBS = "jobs"
TASKS = "tasks"
NODES = "farm_nodes"
ATTEMPTS = "task_attempts"
NODE_CONTROLS = "node_controls"  # written by pipelines/farm/node_admin.py
SCHEDULABLE = ("waiting", "queued", "running")  # job statuses whose tasks may run or wait

declare_indexes(JOBS, [
    IndexModel([("studio_id", ASCENDING), ("created_s", DESCENDING)], name="studio_recent"),
    IndexModel([("studio_id", ASCENDING), ("status", ASCENDING), ("created_s", DESCENDING)],
               name="studio_status"),
    IndexModel([("status", ASCENDING)], name="status"),
])
# A job's ready tasks in index order (hinted by its keys: the embedded server names
# indexes its own way).
READY_BY_INDEX = [("job_id", ASCENDING), ("state", ASCENDING), ("index", ASCENDING)]
declare_indexes(TASKS, [
    IndexModel(READY_BY_INDEX, name="job_queue"),
    IndexModel([("state", ASCENDING), ("lease_expires_s", ASCENDING)], name="leases"),
    IndexModel([("job_id", ASCENDING), ("index", ASCENDING)], unique=True, name="job_index"),
    IndexModel([("node_id", ASCENDING), ("state", ASCENDING)], name="node_state"),
    IndexModel([("job_id", ASCENDING), ("layer", ASCENDING), ("state", ASCENDING)],
               name="job_layer"),
    # Redundant on MongoDB (a prefix of job_queue); the embedded server matches an equality
    # on a field through an index only when one is named after the field alone, and
    # otherwise reads the whole collection (1.2 s for a job's tasks among a million).
    IndexModel([("job_id", ASCENDING)], name="job"),
])
declare_indexes(ATTEMPTS, [IndexModel([("job_id", ASCENDING), ("task_id", ASCENDING)],
                                      name="job_task"),
                           IndexModel([("finished_s", ASCENDING)], name="finished")])


class FarmStore:
    def __init__(self, db):
        self.jobs = db[JOBS]
        self.tasks = db[TASKS]
        self.nodes = db[NODES]
        # One document per attempt (not an array pushed onto the task): the embedded
        # server stores a pushed sub-document as a JSON string.
        self.attempts = db[ATTEMPTS]
        self.controls = db[NODE_CONTROLS]  # read here; written by NodeAdmin

    async def record_attempt(self, entry: dict[str, Any]) -> None:
        entry = entry | {"_id": f"{entry['task_id']}:{entry['attempt']}"}
        with contextlib.suppress(DuplicateKeyError):  # a report delivered twice
            await self.attempts.insert_one(entry)

    async def history(self, task_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {t: [] for t in task_ids}
        for entry in await self.attempts.find({"task_id": {"$in": task_ids}}).to_list():
            found.setdefault(entry["task_id"], []).append(entry)
        for entries in found.values():
            entries.sort(key=lambda e: e["attempt"])
        return found

    async def insert_job(self, job: dict[str, Any], tasks: list[dict[str, Any]]) -> None:
        """`job` gets its task count and counts by state (the dispatcher promotes the
        waiting tasks of jobs whose counts hold some)."""
        job["task_count"] = len(tasks)
        job["counts"] = {state: sum(t["state"] == state for t in tasks)
                         for state in (TaskState.READY.value, TaskState.WAITING.value)}
        # Tasks first: a job document is only ever seen with all its tasks in place.
        await self.tasks.insert_many(tasks, ordered=True)
        await self.jobs.insert_one(job)

    async def job(self, job_id: str) -> dict[str, Any] | None:
        return await self.jobs.find_one({"_id": job_id})

    async def open_requirements(self, job_id: str) -> list[dict[str, Any]]:
        """Each distinct requirement set among the job's tasks still to run (layers and a
        retry after running out of memory may ask for different nodes)."""
        ended = [*DONE, TaskState.DEAD.value, TaskState.CANCELLED.value]
        found: dict[str, dict[str, Any]] = {}
        async for task in self.tasks.find({"job_id": job_id, "state": {"$nin": ended}},
                                          {"requirements": 1}):
            found.setdefault(repr(sorted(task["requirements"].items())), task["requirements"])
        return list(found.values())

    async def schedulable_jobs(self) -> dict[str, dict[str, Any]]:
        """Jobs whose tasks may run now or become ready (waiting ones included)."""
        docs = await self.jobs.find({"status": {"$in": list(SCHEDULABLE)}}
                                    ).to_list()
        return {d["_id"]: d for d in docs}

    async def jobs_waiting(self) -> dict[str, dict[str, Any]]:
        """Schedulable jobs whose counts hold waiting tasks (a job submitted with some
        counts them; one that gets some again is recounted): those whose tasks may be
        promoted, without reading every schedulable job after every success."""
        docs = await self.jobs.find({"counts.waiting": {"$gt": 0}}).to_list()
        return {d["_id"]: d for d in docs if d.get("status") in SCHEDULABLE}

    async def job_statuses(self, studio_id: str | None, job_ids: list[str]) -> dict[str, str]:
        """Status by id of those of `job_ids` that exist (in `studio_id`, when given)."""
        if not job_ids:
            return {}
        query: dict[str, Any] = {"_id": {"$in": list(job_ids)}}
        if studio_id is not None:
            query["studio_id"] = studio_id
        docs = await self.jobs.find(query, {"status": 1}).to_list()
        return {d["_id"]: d["status"] for d in docs}

    async def layer_done(self, job_id: str, layer: str) -> bool:
        """Every task of the layer is done (succeeded or skipped). A find, not a count: the
        embedded server counts with `$nin` in Python over the whole collection."""
        return await self.tasks.find_one(
            {"job_id": job_id, "layer": layer, "state": {"$nin": list(DONE)}},
            {"_id": 1}) is None

    async def ready_of(self, job_id: str, limit: int = 0, after: int = -1
                       ) -> list[dict[str, Any]]:
        """A job's first `limit` ready tasks by index (0: all), past index `after`. The
        (job, state, index) index yields them in index order, so no sort is asked for: the
        embedded server would sort every ready task of the job in Python to return the
        first few."""
        return await self.tasks.find({"job_id": job_id, "state": TaskState.READY.value,
                                      "index": {"$gt": after}}
                                     ).hint(READY_BY_INDEX).limit(limit).to_list()

    async def _in_states(self, query: dict[str, Any], states: Iterable[str],
                         projection: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """`query` with `state` in `states`, one state at a time: the embedded server uses
        no index for an `$in` on a field and reads every task in Python (a second at a
        million tasks), where each equality is an index lookup."""
        found: list[dict[str, Any]] = []
        for state in states:
            found += await self.tasks.find(query | {"state": state}, projection).to_list()
        return found

    async def active_task_ids(self, studio_id: str) -> set[str]:
        return {t["_id"] for t in await self._in_states({"studio_id": studio_id}, ACTIVE,
                                                        {"_id": 1})}

    async def recent_failures(self, since_s: float, node_id: str | None = None
                              ) -> dict[str, dict[str, int]]:
        """Failed attempts since `since_s`, by node and failure class (counts only: the
        nodes are shared, the tasks are not)."""
        match: dict[str, Any] = {"finished_s": {"$gte": since_s}, "ok": False}
        if node_id is not None:
            match["node_id"] = node_id
        cursor = await self.attempts.aggregate([
            {"$match": match},
            {"$group": {"_id": {"node": "$node_id", "class": "$failure_class"},
                        "n": {"$sum": 1}}}])
        found: dict[str, dict[str, int]] = {}
        for row in await cursor.to_list():
            found.setdefault(row["_id"]["node"], {})[row["_id"]["class"] or "crash"] = \
                int(row["n"])
        return found

    async def node_controls(self, since_s: float) -> list[dict[str, Any]]:
        """Lock, drain and labels of nodes, changed since `since_s` (the last one read again:
        another may share its time)."""
        return await self.controls.find({"updated_s": {"$gte": since_s}}).to_list()

    async def tasks_by_id(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not task_ids:
            return {}
        return {d["_id"]: d for d in await self.tasks.find({"_id": {"$in": task_ids}}
                                                           ).to_list()}

    async def active_tasks(self) -> list[dict[str, Any]]:
        return await self._in_states({}, ACTIVE)

    async def ended_badly(self, job_id: str) -> dict[str, Any] | None:
        """One dead or failed task of the job, for the reason it failed."""
        found = await self._in_states({"job_id": job_id}, ("dead", "failed"))
        return min(found, key=lambda t: t["index"]) if found else None

    async def expired_leases(self, since_s: float, now_s: float) -> list[dict[str, Any]]:
        """Active tasks whose written lease ended in [since_s, now_s)."""
        return await self._in_states(
            {"lease_expires_s": {"$gte": since_s, "$lt": now_s}}, ACTIVE)

    async def waiting_tasks(self, job_ids: list[str]) -> list[dict[str, Any]]:
        if not job_ids:
            return []
        return await self.tasks.find(
            {"state": TaskState.WAITING.value, "job_id": {"$in": job_ids}}).to_list()

    async def states_of(self, task_ids: list[str]) -> dict[str, str]:
        docs = await self.tasks.find({"_id": {"$in": task_ids}}, {"state": 1}).to_list()
        return {d["_id"]: d["state"] for d in docs}

    async def apply(self, updates: list[UpdateOne]) -> int:
        """One round trip for a batch of conditional task updates; returns how many held."""
        if not updates:
            return 0
        result = await self.tasks.bulk_write(updates, ordered=False)
        return result.modified_count

    async def recount(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        """The job's tasks counted by layer and state, with the mean and standard deviation
        of each state's run times (the succeeded ones are the layer's). One aggregation per
        layer, grouped by one plain field: the embedded server groups a compound or computed
        key in Python, copying every task (150 ms for 1,000 tasks against a few), and the
        deviation comes from the mean of the squares for the same reason. The layers are
        the job document's (read from its tasks when it names none)."""
        job_id = job["_id"]
        wall = "$metrics.wall_s"
        rows = []
        layers = [layer["name"] for layer in job.get("layers") or []]
        for layer in layers or await self.tasks.distinct("layer", {"job_id": job_id}):
            cursor = await self.tasks.aggregate([
                {"$match": {"job_id": job_id, "layer": layer}},
                {"$group": {"_id": "$state", "n": {"$sum": 1}, "mean_s": {"$avg": wall},
                            "square_s": {"$avg": {"$multiply": [wall, wall]}}}}])
            for row in await cursor.to_list():
                mean, square = row.get("mean_s"), row.get("square_s")
                rows.append({"layer": layer, "state": row["_id"], "n": int(row["n"]),
                             "mean_s": mean, "sd_s": None if mean is None or square is None
                             else math.sqrt(max(0.0, square - mean * mean))})
        return rows

    async def state_counts(self, job_id: str) -> dict[str, int]:
        """The job's tasks by state, counted now: one aggregation on a plain field."""
        cursor = await self.tasks.aggregate([
            {"$match": {"job_id": job_id}},
            {"$group": {"_id": "$state", "n": {"$sum": 1}}}])
        return {row["_id"]: int(row["n"]) for row in await cursor.to_list()}

    async def record_attempts(self, entries: list[dict[str, Any]]) -> None:
        if entries:
            with contextlib.suppress(BulkWriteError):  # reports delivered twice
                await self.attempts.insert_many(
                    [e | {"_id": f"{e['task_id']}:{e['attempt']}"} for e in entries],
                    ordered=False)

    async def set_job(self, job_id: str, fields: dict[str, Any],
                      only_if_status: list[str] | None = None,
                      where: dict[str, Any] | None = None) -> bool:
        query: dict[str, Any] = {"_id": job_id, **(where or {})}
        if only_if_status is not None:
            query["status"] = {"$in": only_if_status}
        result = await self.jobs.update_one(query, {"$set": fields})
        return result.modified_count == 1

    async def set_task(self, fence: dict[str, Any], fields: dict[str, Any]) -> bool:
        """One task's fields, if it still matches `fence` (its attempt, its state)."""
        result = await self.tasks.update_one(fence, {"$set": fields})
        return result.modified_count == 1

    async def set_tasks(self, task_ids: list[str], where: dict[str, Any],
                        fields: dict[str, Any]) -> int:
        """The same fields on those of `task_ids` that match `where`; how many changed."""
        result = await self.tasks.update_many({"_id": {"$in": task_ids}, **where},
                                              {"$set": fields})
        return result.modified_count

    async def set_job_tasks(self, job_id: str, states: list[str] | tuple[str, ...],
                            fields: dict[str, Any], task_ids: list[str] | None = None) -> int:
        """Every task of a job (of `task_ids`, when given) in one of `states`; how many
        changed."""
        query: dict[str, Any] = {"job_id": job_id}
        if task_ids is not None:
            query["_id"] = {"$in": task_ids}
        changed = 0
        # One state at a time (see `_in_states`); the state they are set to first, so no
        # task is changed twice.
        for state in sorted(states, key=lambda s: s != fields.get("state")):
            result = await self.tasks.update_many(query | {"state": state}, {"$set": fields})
            changed += result.modified_count
        return changed

    async def save_nodes(self, docs: list[dict[str, Any]], gone: list[str] | None) -> None:
        """Write these nodes' documents, and drop those of nodes that left (`gone`; None:
        every node not in `docs`)."""
        if gone is None:
            await self.nodes.delete_many({"_id": {"$nin": [d["_id"] for d in docs]}})
        elif gone:
            await self.nodes.delete_many({"_id": {"$in": gone}})
        if docs:
            await self.nodes.bulk_write(
                [UpdateOne({"_id": d["_id"]}, {"$set": d}, upsert=True) for d in docs],
                ordered=False)
