"""Live delivery over real sockets, two Api replicas and the broadcaster actor.

Across replicas, replay after a reconnect (also across a broadcaster restart), a client
that stops reading, retention and resync, farm events in job and studio rooms.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import websockets
from websockets.asyncio.client import connect

from tests.support.assets import create_asset
from tests.support.identity import register_studio
from tests.support.live import ORIGIN, LiveClient, is_event, ws_url


@pytest.fixture
async def studio(http):
    return await register_studio(http, roles=("artist", "director", "producer"))


@pytest.fixture
def ray_events(db, ray_cluster):
    """An EventLog in this process publishing to the broadcaster, like the dispatcher's."""
    from actors.broadcaster import RayEventPublisher
    from pipelines.events.log import EventLog

    return EventLog(db, publisher=RayEventPublisher())


async def started(client: LiveClient) -> LiveClient:
    """Live delivery starts with the client's first message."""
    await client.send({"type": "ping", "id": "start"})
    assert (await client.next(lambda f: f.get("type") == "pong"))["id"] == "start"
    return client


async def comment(http, member, asset_id: str, body: str) -> int:
    response = await http.post(f"/api/v1/assets/{asset_id}/comments", json={"body": body},
                               headers=member.headers)
    assert response.status_code == 201, response.text
    return response.json()["seq"]


async def test_a_client_on_one_replica_receives_what_the_other_replica_produced(api, http,
                                                                                studio):
    asset = await create_asset(http, studio.artist.headers)
    clients, by_replica = [], {}
    for _ in range(16):  # the proxy spreads sockets over both replicas
        client = await LiveClient.open(api, studio.director.access_token)
        clients.append(client)
        by_replica.setdefault(client.hello["replica"], client)
        if len(by_replica) == 2:
            break
    assert len(by_replica) == 2, "every socket landed on one replica"
    one, other = by_replica.values()
    for client in (one, other):
        await started(client)
    for sender, receiver in ((one, other), (other, one)):
        ref = uuid.uuid4().hex
        await sender.send({"type": "asset.comment", "id": ref, "asset_id": asset["id"],
                           "body": f"from {sender.hello['replica']}"})
        ack = await sender.reply(ref)
        assert ack["type"] == "ack", ack
        event = await receiver.next(lambda f, s=ack["seq"]: f.get("seq") == s)
        assert event["type"] == "asset.commented"
        assert event["data"]["comment"]["body"] == f"from {sender.hello['replica']}"
    for client in clients:
        await client.close()


@pytest.mark.parametrize("how", ["query", "message", "auth_message"])
async def test_reconnect_with_last_seq_gets_exactly_the_missed_events_then_live(api, http,
                                                                               studio, how):
    asset = await create_asset(http, studio.artist.headers)
    first = await started(await LiveClient.open(api, studio.director.access_token))
    last = await comment(http, studio.artist, asset["id"], "before")
    seen = await first.next(lambda f: f.get("seq") == last)
    await first.close()
    missed = [await comment(http, studio.artist, asset["id"], f"missed {i}") for i in range(10)]
    assert missed == list(range(last + 1, last + 11))
    token = studio.director.access_token
    if how == "query":
        again = await LiveClient.open(api, token, last_seq=seen["seq"])
    elif how == "auth_message":
        again = await LiveClient.open(api, token, last_seq=seen["seq"], via_message=True)
    else:
        again = await LiveClient.open(api, token)
        await again.send({"last_seq": seen["seq"]})
    replayed = await again.events(10)
    assert [e["seq"] for e in replayed] == missed
    assert [e["data"]["comment"]["body"] for e in replayed] == [f"missed {i}" for i in range(10)]
    resumed = await again.next(lambda f: f["type"] == "resumed")
    assert resumed["seq"] == missed[-1]
    live = await comment(http, studio.artist, asset["id"], "live")
    assert (await again.next(is_event))["seq"] == live
    assert not [f for f in await again.quiet(0.5) if is_event(f)], "an event came twice"
    await again.close()


async def test_nothing_is_missed_when_the_broadcaster_is_killed_mid_stream(api, http, studio):
    import ray

    from actors.broadcaster import broadcaster

    asset = await create_asset(http, studio.artist.headers)
    watching = await started(await LiveClient.open(api, studio.director.access_token))
    away = await started(await LiveClient.open(api, studio.producer.access_token))
    await away.close()
    first = away.hello["seq"]
    epoch = await broadcaster().stats.remote()
    produced = []
    for i in range(30):
        if i == 10:
            ray.kill(broadcaster(), no_restart=False)  # Ray restarts it: a new, empty one
        produced.append(await comment(http, studio.artist, asset["id"], f"c{i}"))
        await asyncio.sleep(0.05)
    assert produced == list(range(produced[0], produced[0] + 30))
    assert (await broadcaster().stats.remote())["epoch"] != epoch["epoch"], "no restart"
    received = await watching.events(30, within=30)
    assert [e["seq"] for e in received] == produced
    back = await LiveClient.open(api, studio.producer.access_token, last_seq=first)
    assert [e["seq"] for e in await back.events(30, within=30)] == produced
    late = await comment(http, studio.artist, asset["id"], "after the restart")
    assert (await watching.next(is_event))["seq"] == late
    assert (await back.next(is_event))["seq"] == late
    for client in (watching, back):
        await client.close()


async def test_a_client_that_stops_reading_is_cut_and_the_room_carries_on(api, http, studio,
                                                                          ray_events):
    reader = await started(await LiveClient.open(api, studio.director.access_token))
    stalled = await connect(ws_url(api), subprotocols=["bearer", studio.artist.access_token],
                            additional_headers={"Origin": ORIGIN}, max_queue=1)
    json.loads(await stalled.recv())  # hello
    await stalled.send(json.dumps({"type": "ping"}))  # start delivery, then never read
    room = f"studio:{studio.studio_id}"
    count = 1000
    started_s = time.monotonic()
    for i in range(count):
        await ray_events.append(studio.studio_id, "test.tick", room, {"i": i})
    received = await reader.events(count, within=60)
    assert [e["data"]["i"] for e in received] == list(range(count))
    assert time.monotonic() - started_s < 60
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(stalled.recv(), 30)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1013, "client too slow")
    await reader.close()


async def test_a_last_seq_older_than_retention_gets_resync(api, http, studio, ray_events):
    room = f"studio:{studio.studio_id}"
    for i in range(150):
        await ray_events.append(studio.studio_id, "test.tick", room, {"i": i})
    await ray_events.prune(max_count=100, studio_ids=[studio.studio_id])
    oldest = await ray_events.oldest(studio.studio_id)
    head = await ray_events.head(studio.studio_id)
    assert head - oldest + 1 == 100
    stale = await LiveClient.open(api, studio.director.access_token, last_seq=oldest - 2)
    resync = await stale.next(lambda f: f["type"] == "resync")
    assert resync["oldest_seq"] == oldest and resync["head_seq"] == head
    ahead = await LiveClient.open(api, studio.director.access_token, last_seq=head + 5)
    assert (await ahead.next(lambda f: f["type"] in ("resync", "resumed")))["type"] == "resync"
    edge = await LiveClient.open(api, studio.director.access_token, last_seq=oldest - 1)
    assert [e["seq"] for e in await edge.events(100)] == list(range(oldest, head + 1))
    response = await http.get("/api/v1/events", params={"after": oldest - 2},
                              headers=studio.director.headers)
    assert response.json()["resync"] is True and response.json()["items"] == []
    for client in (stale, ahead, edge):
        await client.close()


async def test_farm_events_reach_the_job_room_and_the_studio_room(api, http, studio, db,
                                                                  ray_events):
    from pipelines.farm.store import JOBS

    job_id = uuid.uuid4().hex
    # A finished job: visible to the room check, of no interest to the dispatcher.
    await db[JOBS].insert_one({"_id": job_id, "studio_id": studio.studio_id,
                               "status": "completed", "created_s": time.time()})
    other_asset = await create_asset(http, studio.artist.headers)
    studio_wide = await started(await LiveClient.open(api, studio.producer.access_token))
    job_only = await LiveClient.open(api, studio.artist.access_token)
    await job_only.send({"type": "unsubscribe", "id": "u", "room": f"studio:{studio.studio_id}"})
    await job_only.send({"type": "subscribe", "id": "s", "room": f"job:{job_id}"})
    assert (await job_only.reply("s"))["rooms"] == sorted(
        [f"job:{job_id}", f"user:{studio.artist.user_id}"])
    progress = await ray_events.append(studio.studio_id, "job.progress", f"job:{job_id}",
                                       {"job_id": job_id, "progress": 0.5})
    await comment(http, studio.artist, other_asset["id"], "not in the job room")
    for client in (studio_wide, job_only):
        event = await client.next(is_event)
        assert (event["seq"], event["room"]) == (progress["seq"], f"job:{job_id}")
    assert not [f for f in await job_only.quiet(0.5) if is_event(f)]
    assert (await studio_wide.next(is_event))["type"] == "asset.commented"
    for client in (studio_wide, job_only):
        await client.close()


async def test_the_gateway_serves_the_same_socket_beside_serve(api, http, studio, settings):
    """The gateway (one uvicorn process) carries sockets without Serve's per-frame cost."""
    asset = await create_asset(http, studio.artist.headers)
    direct = await started(await LiveClient.open(settings.upload_url,
                                                 studio.director.access_token))
    through_serve = await started(await LiveClient.open(api, studio.producer.access_token))
    assert direct.hello["replica"] != through_serve.hello["replica"]
    seq = await comment(http, studio.artist, asset["id"], "to both")
    for client in (direct, through_serve):
        assert (await client.next(is_event))["seq"] == seq
    await direct.send({"type": "asset.comment", "id": "g", "asset_id": asset["id"],
                       "body": "from the gateway"})
    ack = await direct.reply("g")
    assert (await through_serve.next(is_event))["seq"] == ack["seq"]
    for client in (direct, through_serve):
        await client.close()
