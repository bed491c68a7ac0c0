"""Readiness follows the real dependencies: stop one, /ready says so; start it, /ready recovers."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from pipelines.embedded import EmbeddedServices, wait_for_port


async def _wait_for(http: httpx.AsyncClient, status: int, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    body: dict = {}
    while time.monotonic() < deadline:
        response = await http.get("/ready")
        body = response.json()
        if response.status_code == status:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"/ready never answered {status} within {timeout_s}s: {body}")


@pytest.mark.parametrize(("child", "check"), [("s3", "storage"), ("mongo", "database")])
async def test_stopped_dependency_makes_ready_503_then_recovers(
    http, services: EmbeddedServices, child: str, check: str
):
    if child == "mongo" and os.environ.get("FARM_MONGO_URL"):
        pytest.skip("the database is external to the test run")
    await _wait_for(http, 200, 10)
    services.supervisor.stop(child)
    try:
        started = time.monotonic()
        body = await _wait_for(http, 503, 5)
        assert time.monotonic() - started <= 5
        assert body["status"] == "unavailable"
        assert body["checks"][check]["status"] == "down"
        assert body["checks"][check]["error"]
        others = {name for name, c in body["checks"].items() if c["status"] == "down"}
        assert others == {check}
    finally:
        services.supervisor.start(child)
    await _wait_for(http, 200, 15)


async def test_data_survives_a_restart_of_storage_and_database(services, settings, db):
    from pipelines.storage import ObjectStore
    from serve.platform import storage_config

    store = ObjectStore(storage_config(settings))
    await _reconnected(db)  # an earlier test restarted the database under this client
    await store.ensure_bucket()
    await store.put_bytes("survival/probe.txt", b"still here")
    await db["survival"].insert_one({"_id": "probe", "v": 1})
    for child in ("s3", "mongo"):
        services.supervisor.stop(child)
        services.supervisor.start(child)
    await _reconnected(db)
    assert await store.get_bytes("survival/probe.txt") == b"still here"
    assert (await db["survival"].find_one({"_id": "probe"}))["v"] == 1


async def _reconnected(db, timeout_s: float = 10) -> None:
    """Pooled connections to the old process fail once; the client then reconnects."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await db.ping(1.0)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def test_supervisor_restarts_a_crashed_child(services: EmbeddedServices):
    child = services.supervisor.children["s3"]
    before = child.restarts
    os.kill(child.process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while child.restarts == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert child.restarts == before + 1
    assert wait_for_port(child.host, child.port, 10)
