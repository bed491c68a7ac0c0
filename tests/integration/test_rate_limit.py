"""The request allowance is shared by all replicas: counters live in the database."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from pipelines.ratelimit import COLLECTION, WindowCounter


async def test_two_counters_share_one_allowance(db):
    # Two instances stand for two replicas: together they allow exactly `limit`.
    first = WindowCounter(db[COLLECTION], limit=10, window_s=60)
    second = WindowCounter(db[COLLECTION], limit=10, window_s=60)
    key = f"test:{uuid.uuid4().hex}"
    decisions = await asyncio.gather(*(c.hit(key) for c in [first, second] * 10))
    assert sum(d.allowed for d in decisions) == 10
    refused = [d for d in decisions if not d.allowed]
    assert all(1 <= d.retry_after_s <= 60 for d in refused)


async def test_window_resets_after_its_end(db):
    now = [1_000_000.0]
    counter = WindowCounter(db[COLLECTION], limit=1, window_s=10, clock=lambda: now[0])
    key = f"test:{uuid.uuid4().hex}"
    assert (await counter.hit(key)).allowed
    assert not (await counter.hit(key)).allowed
    now[0] += 10
    assert (await counter.hit(key)).allowed


async def test_ended_windows_are_purged(db):
    from pipelines.ratelimit import purge_ended_windows

    # Far in the future: the replicas' own janitors (which purge by the real clock)
    # must not touch this test's window.
    now = [time.time() + 10_000_000.0]
    counter = WindowCounter(db[COLLECTION], limit=5, window_s=10, clock=lambda: now[0])
    key = f"test:{uuid.uuid4().hex}"
    await counter.hit(key)
    await purge_ended_windows(db[COLLECTION], now[0])
    assert await counter.count(key) == 1  # its window is still running: kept
    now[0] += 10
    assert await purge_ended_windows(db[COLLECTION], now[0]) >= 1
    now[0] -= 10
    assert await counter.count(key) == 0


async def test_api_answers_429_with_retry_after_across_two_replicas(services, settings, api):
    from serve import deployments
    from tests.support.services import test_settings, wait_ready

    # An hour-long window: its own counters, and no window boundary inside the test.
    limited = test_settings(services, services.overrides, rate_limit_requests=12,
                            rate_limit_window_s=3600, api_port=settings.api_port)
    app = deployments.build_app(limited)
    from ray import serve

    serve.run(app, name="rate-limit-probe", route_prefix="/probe")
    base = f"http://127.0.0.1:{settings.api_port}/probe"
    wait_ready(base)
    try:
        # Fresh connections so the proxy spreads requests over both replicas.
        async def one() -> httpx.Response:
            async with httpx.AsyncClient() as client:
                return await client.get(f"{base}/api/v1/nothing-here")

        responses = [await one() for _ in range(30)]
        codes = [r.status_code for r in responses]
        assert codes.count(404) == 12, [(r.status_code, r.text[:80]) for r in responses]
        assert codes.count(429) == 18, codes
        limited_response = next(r for r in responses if r.status_code == 429)
        assert 1 <= int(limited_response.headers["retry-after"]) <= 3600
        assert limited_response.json()["error"]["code"] == "rate_limited"
    finally:
        serve.delete("rate-limit-probe")
