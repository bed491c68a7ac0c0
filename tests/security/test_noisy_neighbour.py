"""One studio floods uploads and jobs; another keeps working, and keeps its quota.

Behaviour, not timing: the flooding studio meets its own limits (open uploads, then the
request allowance), while every request of the other studio succeeds and its usage is
exactly what it did itself. Latencies are printed for whoever looks, never asserted (the
machine is shared).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest

from tests.support.assets import create_asset, upload_simple
from tests.support.identity import register_studio
from tests.support.media import padded

JOB = {"kind": "command", "frames": "1", "command": ["true"],
       "requirements": {"tags": ["never-runs"]}}


async def studio_b_works(http: httpx.AsyncClient, headers: dict, mp4: bytes) -> list[tuple]:
    """A director's day in studio B: (what, status, seconds) per request."""
    done = []

    async def timed(what: str, call) -> httpx.Response:
        started = time.monotonic()
        response = await call
        done.append((what, response.status_code, round(time.monotonic() - started, 3)))
        return response

    asset = (await timed("create asset", http.post(
        "/api/v1/assets", json={"name": "b shot", "kind": "shot"}, headers=headers))).json()
    await timed("upload", upload_simple(http, headers, asset["id"], mp4))
    await timed("declare", http.post(f"/api/v1/assets/{asset['id']}/uploads",
                                     json={"filename": "b.mp4", "size": len(mp4)},
                                     headers=headers))
    await timed("submit job", http.post("/api/v1/jobs", json=JOB, headers=headers))
    for path in ("/api/v1/assets", "/api/v1/jobs", "/api/v1/auth/me"):
        await timed(f"GET {path}", http.get(path, headers=headers))
    return done


async def test_a_flood_of_uploads_and_jobs_leaves_the_other_studio_alone(http, db, settings,
                                                                         mp4_bytes):
    a = await register_studio(http, roles=("td",))
    b = await register_studio(http, roles=("td",))
    a_asset = await create_asset(http, a.td.headers)
    big = padded(mp4_bytes, 2 * 1024 * 1024)

    async def a_declares() -> int:
        response = await http.post(f"/api/v1/assets/{a_asset['id']}/uploads", headers=a.td.headers,
                                   json={"filename": "flood.mp4", "size": len(big)})
        return response.status_code

    async def a_submits() -> int:
        response = await http.post("/api/v1/jobs", json=JOB, headers=a.td.headers)
        return response.status_code

    flood = [a_declares() for _ in range(settings.studio_max_open_uploads + 10)]
    flood += [a_submits() for _ in range(40)]
    a_codes, b_log = await asyncio.gather(asyncio.gather(*flood),
                                          studio_b_works(http, b.td.headers, mp4_bytes))
    print("\nstudio B during A's flood:", *b_log, sep="\n  ")
    declared = Counter(a_codes[:settings.studio_max_open_uploads + 10])
    # A met its own open-upload limit, exactly. Its jobs were taken, or (the machine
    # overloaded by A itself) shed with a 503 to retry, and then never stored.
    assert declared == {201: settings.studio_max_open_uploads, 429: 10}, declared
    submitted = Counter(a_codes[settings.studio_max_open_uploads + 10:])
    assert set(submitted) <= {201, 503}, submitted
    assert await db["jobs"].count_documents({"studio_id": a.studio_id}) == submitted[201]
    assert all(status in (200, 201) for _, status, _ in b_log), b_log
    usage = await db["studio_usage"].find_one({"_id": b.studio_id})
    assert (usage["open_uploads"], usage["bytes"]) == (1, len(mp4_bytes)), usage
    a_usage = await db["studio_usage"].find_one({"_id": a.studio_id})
    assert a_usage["open_uploads"] == settings.studio_max_open_uploads


@pytest.fixture
async def limited_api(services, settings, api):
    """The Api once more, beside the session's, with an allowance small enough to spend."""
    from ray import serve

    from serve import deployments
    from tests.support.services import test_settings, wait_ready

    limited = test_settings(services, services.overrides, rate_limit_requests=25,
                            rate_limit_window_s=3600, api_port=settings.api_port,
                            api_replicas=1)
    serve.run(deployments.build_app(limited), name="noisy-probe", route_prefix="/noisy")
    base = f"http://127.0.0.1:{settings.api_port}/noisy"
    wait_ready(base)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield client
    finally:
        serve.delete("noisy-probe")


async def test_one_studio_spending_its_allowance_does_not_spend_anothers(http, limited_api):
    # Studios are made through the session's Api: the allowance is for the flood.
    a = await register_studio(http, roles=())
    b = await register_studio(http, roles=())
    codes = [(await limited_api.get("/api/v1/jobs", headers=a.admin.headers)).status_code
             for _ in range(30)]
    assert codes.count(429) >= 5, codes  # A spent its allowance (same address as B)
    b_codes = [(await limited_api.get("/api/v1/jobs", headers=b.admin.headers)).status_code
               for _ in range(5)]
    assert b_codes == [200] * 5, b_codes
    # Invented tokens count against the address, not a fresh allowance each.
    fake = [(await limited_api.get("/api/v1/jobs", headers={
        "Authorization": f"Bearer x.{i}.y"})).status_code for i in range(30)]
    assert 429 in fake, fake
