"""New versions become preview jobs once each, even when a dispatcher dies mid-adoption."""

from __future__ import annotations

import time
import uuid

import pytest

from pipelines.assets.previews import CLAIM_S, PreviewRequests
from pipelines.db import Database
from pipelines.events.log import EventLog
from pipelines.farm.submit.adoption import PreviewAdopter
from pipelines.farm.submit.jobs import JobService


@pytest.fixture
async def db(settings):
    """A database of its own: the preview jobs made here must not reach the session's farm
    nodes (they would fail there, on versions that have no file, and open its circuits)."""
    name = f"adoption_{uuid.uuid4().hex[:12]}"
    database = Database(settings.mongo_url.get_secret_value(), name)
    await database.ensure_indexes()
    yield database
    await database.db.client.drop_database(name)
    await database.close()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def new_version(db, woken: list[str] | None = None, family: str = "video") -> dict:
    version = {"_id": uuid.uuid4().hex, "studio_id": uuid.uuid4().hex,
               "asset_id": uuid.uuid4().hex, "number": 1, "key": "k", "sha256": "0" * 64,
               "media": {"family": family}, "filename": "a.mp4", "uploaded_by": "u"}
    await db["asset_versions"].insert_one(version)

    async def wake() -> None:
        if woken is not None:
            woken.append(version["_id"])

    await PreviewRequests(db, wake=wake)(version)
    return version


async def _no_wake(job_id: str | None = None) -> None:
    return None


def adopter(db, clock: Clock) -> PreviewAdopter:
    return PreviewAdopter(db, JobService(db, EventLog(db), wake=_no_wake), clock=clock)


async def preview_jobs(db, version: dict) -> list[dict]:
    return await db["jobs"].find({"kind": "preview", "target.asset_id":
                                  version["asset_id"]}).to_list()


async def test_a_new_version_wakes_the_farm_and_becomes_one_preview_job(db):
    woken: list[str] = []
    version = await new_version(db, woken)
    assert woken == [version["_id"]]
    clock = Clock()
    await adopter(db, clock)()
    await adopter(db, clock)()  # nothing left to adopt
    jobs = await preview_jobs(db, version)
    request = await db["preview_requests"].find_one({"_id": version["_id"]})
    assert len(jobs) == 1 and request["job_id"] == jobs[0]["_id"]


async def test_a_scene_or_an_archive_makes_no_preview_job(db):
    woken: list[str] = []
    versions = [await new_version(db, woken, family) for family in ("scene", "archive")]
    await adopter(db, Clock())()
    assert woken == [] and [await preview_jobs(db, v) for v in versions] == [[], []]
    assert await db["preview_requests"].count_documents(
        {"_id": {"$in": [v["_id"] for v in versions]}}) == 0


async def test_a_claim_whose_dispatcher_died_is_adopted_again_later(db):
    version = await new_version(db)
    clock = Clock()
    assert await PreviewRequests(db, clock).claim(version["_id"])  # ... and then it died
    await adopter(db, clock)()
    assert await preview_jobs(db, version) == []  # a fresh claim is respected
    clock.now += CLAIM_S + 1
    await adopter(db, clock)()
    jobs = await preview_jobs(db, version)
    request = await db["preview_requests"].find_one({"_id": version["_id"]})
    assert len(jobs) == 1 and request["job_id"] == jobs[0]["_id"]
