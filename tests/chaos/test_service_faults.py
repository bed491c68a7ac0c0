"""The serving parts fail while a job runs: the broadcaster, an Api replica, the upload
gateway in the middle of an upload."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import ray
from ray import serve

from tests.support.assets import MIB, chunks, create_asset, declare
from tests.support.chaos import until
from tests.support.media import padded

pytestmark = pytest.mark.cluster
NAMESPACE = "studio-farm"
OCTETS = {"Content-Type": "application/octet-stream"}


async def test_the_broadcaster_killed_mid_job(under_fault, db, recovered):
    await under_fault.start(seconds=0.8)
    await under_fault.until_frames_end(2)
    broadcaster = ray.get_actor("farm-broadcaster", namespace=NAMESPACE)
    ray.kill(broadcaster, no_restart=False)
    started = time.monotonic()
    await under_fault.watcher.drop()  # the frontend's connection drops meanwhile
    while True:  # Ray restarts it; events were stored first, so none can be lost
        try:
            await asyncio.wait_for(broadcaster.stats.remote(), 2)
            break
        except (ray.exceptions.RayActorError, TimeoutError):
            await asyncio.sleep(0.1)
    recovered("broadcaster killed", time.monotonic() - started)
    await under_fault.watcher.reconnect()
    await under_fault.assert_intact(db)


def api_replicas() -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == "serve" and a["name"].startswith("SERVE_REPLICA::")
            and "#Api#" in a["name"]]


async def running_replicas() -> int:
    status = await asyncio.to_thread(serve.status)
    return sum(d.replica_states.get("RUNNING", 0)
               for app in status.applications.values()
               for name, d in app.deployments.items() if name == "Api")


async def test_an_api_replica_killed_under_load(under_fault, api, db, recovered):
    await under_fault.start(seconds=0.8)
    answers: list[tuple[int, float, int]] = []  # (client, sent, status)
    stop = asyncio.Event()

    async def frontend(me: int) -> None:  # its own connections, spread over both replicas
        async with httpx.AsyncClient(base_url=api, timeout=30) as client:
            while not stop.is_set():
                sent = time.monotonic()
                response = await client.get(f"/api/v1/jobs/{under_fault.job['id']}",
                                            headers=under_fault.headers)
                answers.append((me, sent, response.status_code))

    load = [asyncio.create_task(frontend(me)) for me in range(4)]
    await asyncio.sleep(1.0)
    [victim, *_] = api_replicas()
    killed = time.monotonic()
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)

    async def replaced() -> bool:
        return victim not in api_replicas() and await running_replicas() == 2

    recovered("Api replica killed", await until(replaced))

    def answered_after_kill() -> list[int]:
        return [sum(1 for c, sent, status in answers
                    if c == me and sent > killed and status == 200) for me in range(4)]

    async def every_client_served() -> bool:  # by the survivor and the replacement
        return min(answered_after_kill()) >= 10

    await until(every_client_served, timeout_s=60)
    stop.set()
    await asyncio.gather(*load)
    # The requests the dead replica was serving at that instant (one per client at
    # most) die with it; every request sent after the kill is answered.
    failed = [(sent, status) for _, sent, status in answers if status != 200]
    assert len(failed) <= len(load) and all(sent <= killed for sent, _ in failed), failed
    await under_fault.assert_intact(db)


async def slow_body(piece: bytes, pause_s: float) -> AsyncIterator[bytes]:
    for chunk in chunks(piece, MIB):
        yield chunk
        await asyncio.sleep(pause_s)


async def test_the_upload_gateway_killed_mid_upload(under_fault, http, settings, mp4_bytes, db,
                                                    recovered):
    await under_fault.start(seconds=0.8)
    headers = under_fault.studio.artist.headers
    asset = await create_asset(http, headers)
    data = padded(mp4_bytes, 3 * settings.upload_part_size_bytes)
    session = await declare(http, headers, asset["id"], data)
    pieces = chunks(data, session["part_size"])
    url = session["proxy_part_url_template"].replace("{part}", "{}")
    async with httpx.AsyncClient(timeout=60) as gateway:
        first = await gateway.put(url.format(1), content=pieces[0], headers={**headers, **OCTETS})
        assert first.status_code == 200, first.text
        cut = asyncio.create_task(gateway.put(url.format(2), content=slow_body(pieces[1], 0.3),
                                              headers={**headers, **OCTETS}))
        await asyncio.sleep(0.7)  # part 2 is on its way
        ray.kill(ray.get_actor("farm-upload-gateway", namespace=NAMESPACE), no_restart=False)
        started = time.monotonic()
        with pytest.raises(httpx.TransportError):
            await cut
        async def serving() -> bool:  # any answer at all: it listens again
            try:
                await gateway.get(f"{settings.upload_url}/api/v1/uploads/{session['id']}/parts/1")
            except httpx.TransportError:
                return False
            return True

        await until(serving, timeout_s=60)
        recovered("upload gateway killed mid-upload", time.monotonic() - started)
        # The client asks what storage holds and sends only what is missing.
        status = (await http.get(f"/api/v1/uploads/{session['id']}", headers=headers)).json()
        assert [p["part"] for p in status["parts"]] == [1]
        assert status["missing_parts"] == [2, 3]
        for number in status["missing_parts"]:
            sent = await gateway.put(url.format(number), content=pieces[number - 1],
                                     headers={**headers, **OCTETS})
            assert sent.status_code == 200, sent.text
    status = (await http.get(f"/api/v1/uploads/{session['id']}", headers=headers)).json()
    done = await http.post(f"/api/v1/uploads/{session['id']}/complete", headers=headers, json={
        "parts": [{"part": p["part"], "etag": p["etag"]} for p in status["parts"]]})
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == hashlib.sha256(data).hexdigest()
    await under_fault.watcher.reconnect()  # the socket lived on the gateway too
    await under_fault.assert_intact(db)
