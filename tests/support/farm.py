"""Factories and waits for farm tests."""

from __future__ import annotations

import asyncio
import time

import httpx

from pipelines.storage import ObjectStore, storage_config

FINAL = {"completed", "failed", "cancelled"}


async def submit(http: httpx.AsyncClient, headers: dict, **body: object) -> dict:
    response = await http.post("/api/v1/jobs", json={"kind": "command", **body}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def frame_writer(delay_s: float = 0.0, guard: str = "") -> list[str]:
    """A command that writes one file per frame (after an optional delay and guard)."""
    sleep = f"sleep {delay_s}; " if delay_s else ""
    return ["/bin/sh", "-c", f"{guard}{sleep}echo {{frame}} > {{output}}/frame_{{frame:04d}}.txt"]


async def wait_job(http: httpx.AsyncClient, headers: dict, job_id: str,
                   statuses: set[str] = FINAL, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    job: dict = {}
    while time.monotonic() < deadline:
        response = await http.get(f"/api/v1/jobs/{job_id}", headers=headers)
        # A 503 says "retry" (a dependency is away or the machine overloaded), as a
        # frontend reads it; anything else that is not the job is a failure.
        assert response.status_code in (200, 503), response.text
        job = response.json() if response.status_code == 200 else job
        if job.get("status") in statuses:
            return job
        await asyncio.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job.get('status')}: {job}")


async def tasks_of(http: httpx.AsyncClient, headers: dict, job_id: str) -> list[dict]:
    response = await http.get(f"/api/v1/jobs/{job_id}/tasks", params={"limit": 500},
                              headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def farm_nodes(http: httpx.AsyncClient, headers: dict) -> list[dict]:
    response = await http.get("/api/v1/farm/nodes", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def wait_nodes(http: httpx.AsyncClient, headers: dict, count: int,
                     timeout_s: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    nodes: list[dict] = []
    while time.monotonic() < deadline:
        nodes = await farm_nodes(http, headers)
        if len(nodes) == count:
            return nodes
        await asyncio.sleep(0.5)
    raise AssertionError(f"the farm has {len(nodes)} nodes, not {count}")


def outputs(settings, studio_id: str, job_id: str) -> list[str]:
    store = ObjectStore(storage_config(settings))
    prefix = f"studios/{studio_id}/jobs/{job_id}/outputs/"
    return sorted(o.object_name.rsplit("/", 1)[1] for o in store.client.list_objects(
        settings.s3_bucket, prefix, recursive=True))


def expected_frames(frames) -> list[str]:
    return [f"frame_{f:04d}.txt" for f in frames]
