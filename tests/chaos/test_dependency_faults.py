"""Storage and the database go away mid-job: the API says so at once in the error
contract, and everything recovers by itself when they come back."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.support.assets import create_asset
from tests.support.chaos import until

pytestmark = pytest.mark.cluster
DRIVER_WORDS = ("Error", "_Operation", "Timeout", "pymongo", "Exception")
OUTAGE_S = 5.0


async def answers_503_in_time(request: Callable[[], Awaitable[httpx.Response]],
                              limit_s: float) -> float:
    """One request made while a dependency is down: a 503 in the error contract, in plain
    words, within `limit_s`. Returns how long it took."""
    started = time.monotonic()
    response = await request()
    took = time.monotonic() - started
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "dependency_unavailable" and error["request_id"]
    assert not any(word in error["message"] for word in DRIVER_WORDS), error["message"]
    assert response.headers.get("retry-after")
    assert took <= limit_s, f"503 after {took:.2f} s, over FARM_DEPENDENCY_TIMEOUT_S={limit_s}"
    return took


@pytest.mark.parametrize("how", ["stalled", "stopped"])
async def test_the_database_away_mid_job(under_fault, services, settings, http, db, recovered,
                                         how):
    await under_fault.start(seconds=0.8)
    await under_fault.until_frames_end(2)
    mongo = services.supervisor.children["mongo"]
    job_url = f"/api/v1/jobs/{under_fault.job['id']}"

    def read_job() -> Awaitable[httpx.Response]:
        return http.get(job_url, headers=under_fault.headers)

    if how == "stalled":  # it holds its connections and answers nothing: the hard case
        os.kill(mongo.process.pid, signal.SIGSTOP)
    else:
        services.supervisor.stop("mongo")
    try:
        took = [await answers_503_in_time(read_job, settings.dependency_timeout_s)
                for _ in range(3)]
        print(f"database {how}: 503 after {max(took):.2f} s at most")
        await asyncio.sleep(max(0.0, OUTAGE_S - sum(took)))
    finally:
        if how == "stalled":
            os.kill(mongo.process.pid, signal.SIGCONT)
        else:
            services.supervisor.start("mongo")
    async def answers() -> bool:
        return (await read_job()).status_code == 200

    recovered(f"database {how} {OUTAGE_S:g} s", await until(answers))
    await under_fault.assert_intact(db)


async def test_storage_stopped_mid_job(under_fault, services, settings, http, db, recovered,
                                       mp4_bytes):
    await under_fault.start(seconds=0.8)
    await under_fault.until_frames_end(2)
    headers = under_fault.studio.artist.headers
    asset = await create_asset(http, headers)

    async def upload(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(f"/api/v1/assets/{asset['id']}/file", headers=headers,
                                 files={"file": ("plate.mp4", mp4_bytes, "video/mp4")})

    async with httpx.AsyncClient(base_url=settings.upload_url, timeout=30) as gateway:
        services.supervisor.stop("s3")
        try:
            took = await answers_503_in_time(lambda: upload(gateway),
                                             settings.dependency_timeout_s)
            print(f"storage stopped: an upload answered 503 after {took:.2f} s")
            await asyncio.sleep(OUTAGE_S - took)
        finally:
            services.supervisor.start("s3")
        async def stored() -> bool:  # a frontend retrying its upload
            return (await upload(gateway)).status_code == 201

        recovered(f"storage stopped {OUTAGE_S:g} s", await until(stored))
    versions = await http.get(f"/api/v1/assets/{asset['id']}/versions", headers=headers)
    assert len(versions.json()["items"]) == 1  # the refused upload left no version behind
    await under_fault.assert_intact(db)
