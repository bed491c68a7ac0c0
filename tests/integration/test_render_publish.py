"""Publishing a finished render: a version in review, once; refused for an approved asset;
and a task with a publishing hook is succeeded only after its hook ran."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

import pytest

from pipelines.events.log import EventLog
from pipelines.farm.control.outcomes import OutcomeHandler
from pipelines.farm.control.policy import BadNodes, CircuitBreakers, RetryPolicy
from pipelines.farm.control.progress import JobTracker
from pipelines.farm.protocol import Finished, TaskFailed
from pipelines.farm.publish.render import RenderPublisher
from pipelines.farm.store import FarmStore
from pipelines.storage import ObjectStore, storage_config
from tests.support.assets import create_asset
from tests.support.identity import register_studio


async def finished(http, db, settings, mp4_bytes) -> tuple[dict, dict, dict, dict]:
    """A render job whose assembly just succeeded: job, task, outcome and the studio."""
    studio = await register_studio(http, roles=("artist",))
    target = await create_asset(http, studio.artist.headers, kind="render")
    job_id = uuid.uuid4().hex
    key = f"studios/{studio.studio_id}/assets/{target['id']}/renders/{job_id}/movie.mp4"
    store = ObjectStore(storage_config(settings))
    await store.put_bytes(key, mp4_bytes, "video/mp4")
    job = {"_id": job_id, "studio_id": studio.studio_id, "name": "sh010 lighting",
           "submitted_by": studio.artist.user_id, "target": {"asset_id": target["id"]},
           "status": "running", "kind": "render", "created_s": time.time()}
    await db["jobs"].insert_one(job)
    task = {"_id": f"{job_id}-00003", "job_id": job_id, "state": "succeeded"}
    await db["tasks"].insert_one(task)
    outcome = Finished(
        task_id=task["_id"], job_id=job_id, studio_id=studio.studio_id, kind="assemble",
        attempt=1, node_id="node-a", ok=True, results={
            "movie": {"key": key, "size": len(mp4_bytes),
                      "sha256": hashlib.sha256(mp4_bytes).hexdigest()},
            "previews": {"kind": "video", "keys": {"proxy": key}}})
    return job, task, outcome, {"id": studio.studio_id, "headers": studio.artist.headers,
                                "target": target["id"]}


async def test_the_movie_becomes_one_version_in_review(http, db, settings, mp4_bytes):
    job, task, outcome, studio = await finished(http, db, settings, mp4_bytes)
    publish = RenderPublisher(db, EventLog(db), ObjectStore(storage_config(settings)))
    await publish(job, task, outcome)
    await publish(job, task, outcome)  # a repeat finds the version instead of adding one
    target, headers = studio["target"], studio["headers"]
    versions = (await http.get(f"/api/v1/assets/{target}/versions",
                               headers=headers)).json()["items"]
    assert [v["number"] for v in versions] == [1]
    assert versions[0]["filename"] == "sh010_lighting.mp4"
    assert versions[0]["media"]["family"] == "video" and versions[0]["previews"]["keys"]
    asset = (await http.get(f"/api/v1/assets/{target}", headers=headers)).json()
    assert asset["status"] == "in_review" and asset["current_version"] == 1
    shown = await db["jobs"].find_one({"_id": job["_id"]})
    assert shown["render"]["published"] == {"asset_id": target, "version": 1}
    events = await db["events"].find({"studio_id": studio["id"],
                                      "room": f"asset:{target}"}).to_list()
    types = [e["type"] for e in events]
    assert types.count("asset.version_created") == 1 and "asset.preview_ready" in types


async def test_an_asset_approved_meanwhile_refuses_the_publication(http, db, settings,
                                                                  mp4_bytes):
    job, task, outcome, studio = await finished(http, db, settings, mp4_bytes)
    await db["assets"].update_one({"_id": studio["target"]}, {"$set": {"status": "approved"}})
    publish = RenderPublisher(db, EventLog(db), ObjectStore(storage_config(settings)))
    with pytest.raises(TaskFailed) as caught:
        await publish(job, task, outcome)
    assert caught.value.failure_class == "bad_input"
    assert caught.value.message.startswith("publish: ") and "approved" in caught.value.message
    assert (await db["assets"].find_one({"_id": studio["target"]}))["version_count"] == 0


# The dispatcher's side: a task with a hook is marked succeeded only once its hook ran.

async def running_assembly(db) -> tuple[dict, dict]:
    job_id, studio_id = uuid.uuid4().hex, uuid.uuid4().hex
    # Paused: the session's farm (cluster tests share the database) must not pick it up.
    job = {"_id": job_id, "studio_id": studio_id, "status": "paused", "kind": "render",
           "priority": 50, "created_s": time.time(), "max_attempts": 3, "task_count": 1,
           "bad_nodes": []}
    task = {"_id": f"{job_id}-00000", "job_id": job_id, "studio_id": studio_id,
            "kind": "assemble", "index": 0, "state": "running", "attempt": 1, "failures": 0,
            "requirements": {"slots": 1.0, "gpus": 0, "memory_bytes": 0, "tags": []}}
    await db["jobs"].insert_one(job)
    await db["tasks"].insert_one(task)
    payload = Finished(task_id=task["_id"], job_id=job_id, studio_id=studio_id, attempt=1,
                       kind="assemble", node_id="node-a", ok=True, exit_code=0,
                       results={"movie": {}})
    return job, payload


def handler(db, hook) -> OutcomeHandler:
    store, events = FarmStore(db), EventLog(db)
    return OutcomeHandler(store, events, JobTracker(store, events), RetryPolicy(0.01, 0.05),
                          CircuitBreakers(1, 60), BadNodes(3), {"assemble": hook})


async def test_a_dispatcher_dying_while_publishing_leaves_the_task_to_run_again(db):
    job, payload = await running_assembly(db)
    publishing = asyncio.Event()

    async def hook(job, task, outcome):
        publishing.set()
        await asyncio.sleep(60)  # the dispatcher dies in here

    handling = asyncio.create_task(handler(db, hook).succeeded([payload]))
    await publishing.wait()
    handling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handling
    task = await db["tasks"].find_one({"_id": payload.task_id})
    assert task["state"] == "running"  # recovery requeues it: never "succeeded" unpublished


async def test_a_refused_publication_fails_the_task_without_blaming_its_node(db):
    job, payload = await running_assembly(db)

    async def hook(job, task, outcome):
        raise TaskFailed("publish: the asset is approved", failure_class="bad_input")

    outcomes = handler(db, hook)
    await outcomes.succeeded([payload])
    task = await db["tasks"].find_one({"_id": payload.task_id})
    assert (task["state"], task["error_class"]) == ("dead", "bad_input")
    assert task["error"] == "publish: the asset is approved"
    assert outcomes.circuits.allows("node-a")  # one failure would have opened it


async def test_storage_away_while_publishing_retries_the_task(db):
    job, payload = await running_assembly(db)

    async def hook(job, task, outcome):
        raise TaskFailed("publish: storage unavailable", failure_class="crash")

    await handler(db, hook).succeeded([payload])
    task = await db["tasks"].find_one({"_id": payload.task_id})
    assert (task["state"], task["failures"]) == ("ready", 1)


async def test_a_published_task_succeeds(db):
    job, payload = await running_assembly(db)
    seen = []

    async def hook(job, task, outcome):
        seen.append(task["state"])

    await handler(db, hook).succeeded([payload])
    task = await db["tasks"].find_one({"_id": payload.task_id})
    assert seen == ["running"] and task["state"] == "succeeded"
