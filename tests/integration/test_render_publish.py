"""Publishing a finished render: a version in review, once; refused for an approved asset."""

from __future__ import annotations

import hashlib
import time
import uuid

from pipelines.events.log import EventLog
from pipelines.farm.render_hooks import RenderPublisher
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
    outcome = {"movie": {"key": key, "size": len(mp4_bytes),
                         "sha256": hashlib.sha256(mp4_bytes).hexdigest()},
               "previews": {"kind": "video", "keys": {"proxy": key}}}
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


async def test_an_asset_approved_meanwhile_fails_the_assembly(http, db, settings, mp4_bytes):
    job, task, outcome, studio = await finished(http, db, settings, mp4_bytes)
    await db["assets"].update_one({"_id": studio["target"]}, {"$set": {"status": "approved"}})
    publish = RenderPublisher(db, EventLog(db), ObjectStore(storage_config(settings)))
    await publish(job, task, outcome)
    task = await db["tasks"].find_one({"_id": task["_id"]})
    assert task["state"] == "dead" and task["error_class"] == "bad_input"
    assert task["error"].startswith("publish: ") and "approved" in task["error"]
    assert (await db["assets"].find_one({"_id": studio["target"]}))["version_count"] == 0
