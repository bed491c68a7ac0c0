"""The socket's edges: admission, tenancy and roles, limits, and closing on lost credentials."""

from __future__ import annotations

import json
import time

import jwt
import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.assets import create_asset
from tests.support.farm import submit
from tests.support.identity import create_key, register_studio
from tests.support.live import ORIGIN, LiveClient, is_event, ws_url


@pytest.fixture
async def studio(http):
    return await register_studio(http, roles=("artist", "director", "producer", "td"))


async def refused(url: str, **options) -> tuple[int, dict]:
    with pytest.raises(InvalidStatus) as denied:
        await connect(url, **options)
    response = denied.value.response
    return response.status_code, json.loads(response.body or b"{}")


async def closed_with(client: LiveClient, within: float = 10.0) -> tuple[int, str]:
    await client.close_code(within)
    assert client.closed is not None and client.closed.rcvd is not None
    return client.closed.rcvd.code, client.closed.rcvd.reason


async def test_admission_checks_origin_credential_and_never_reads_a_query_token(api, studio):
    token = studio.director.access_token
    url = ws_url(api)
    status, body = await refused(url, subprotocols=["bearer", token],
                                 additional_headers={"Origin": "http://evil.example"})
    assert (status, body["error"]["code"]) == (403, "origin_not_allowed")
    status, body = await refused(ws_url(api, f"access_token={token}"),
                                 additional_headers={"Origin": ORIGIN})
    assert (status, body["error"]["code"]) == (400, "token_in_query")
    status, body = await refused(url, subprotocols=["bearer", token[:-4] + "AAAA"])
    assert (status, body["error"]["code"]) == (401, "invalid_token")
    assert set(body["error"]) == {"code", "message", "details", "request_id"}
    browser = await LiveClient.open(api, token)
    assert browser.ws.subprotocol == "bearer"  # the token is never echoed
    script = await LiveClient.open(api, token, origin=None)  # no Origin: not a browser
    by_message = await LiveClient.open(api, token, via_message=True)
    for client in (browser, script, by_message):
        assert client.hello["user_id"] == studio.director.user_id
        await client.close()


async def test_api_keys_authenticate_and_silence_gets_4401(api, http, studio):
    key = await create_key(http, studio.td)
    client = await LiveClient.open(api, key["key"], via_message=True)
    assert client.hello["role"] == "td"
    await client.close()
    async with connect(ws_url(api), additional_headers={"Origin": ORIGIN}) as silent:
        started = time.monotonic()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await silent.recv()
        assert closed.value.rcvd.code == 4401 and 4.5 < time.monotonic() - started < 8
    async with connect(ws_url(api)) as wrong:
        await wrong.send(json.dumps({"type": "auth", "token": "sfk_not-a-key"}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await wrong.recv()
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "invalid_api_key")


async def test_studio_b_sees_nothing_of_studio_a_and_cannot_join_its_rooms(api, http, studio):
    other = await register_studio(http, roles=())
    asset = await create_asset(http, studio.artist.headers)
    a = await LiveClient.open(api, studio.director.access_token)
    b = await LiveClient.open(api, other.admin.access_token)
    for room, code in ((f"asset:{asset['id']}", "room_not_found"),
                       (f"studio:{studio.studio_id}", "room_forbidden"),
                       (f"user:{studio.director.user_id}", "room_forbidden"),
                       ("asset:../../x", "invalid_room")):
        await b.send({"type": "subscribe", "id": room, "room": room})
        reply = await b.reply(room)
        assert (reply["type"], reply["error"]["code"]) == ("error", code), reply
    job = await submit(http, studio.admin.headers, command=["true"])
    # Replay over HTTP answers the same as the socket.
    for room, status, code in ((f"asset:{asset['id']}", 404, "room_not_found"),
                               (f"job:{job['id']}", 404, "room_not_found"),
                               (f"studio:{studio.studio_id}", 403, "room_forbidden"),
                               (f"user:{studio.director.user_id}", 403, "room_forbidden")):
        replay = await http.get("/api/v1/events", params={"room": room},
                                headers=other.admin.headers)
        assert (replay.status_code, replay.json()["error"]["code"]) == (status, code), room
    mine = await http.get("/api/v1/events", params={"room": f"job:{job['id']}"},
                          headers=studio.admin.headers)
    assert mine.status_code == 200 and mine.json()["items"]
    await b.send({"type": "asset.comment", "id": "c", "asset_id": asset["id"], "body": "hi"})
    assert (await b.reply("c"))["error"]["code"] == "asset_not_found"
    await a.send({"type": "asset.comment", "id": "c", "asset_id": asset["id"], "body": "A only"})
    ack = await a.reply("c")
    assert (await a.next(lambda f: f.get("seq") == ack["seq"]))["studio_id"] == studio.studio_id
    leaked = [f for f in await b.quiet(1.0) if studio.studio_id in json.dumps(f)]
    assert not leaked
    for client in (a, b):
        await client.close()


async def test_only_directors_producers_and_supervisors_decide(api, http, studio, mp4_bytes):
    from tests.support.assets import upload_simple

    asset = await create_asset(http, studio.artist.headers)
    assert (await upload_simple(http, studio.artist.headers, asset["id"], mp4_bytes)
            ).status_code == 201
    artist = await LiveClient.open(api, studio.artist.access_token)
    director = await LiveClient.open(api, studio.director.access_token)
    await artist.send({"type": "asset.approve", "id": "a1", "asset_id": asset["id"]})
    assert (await artist.reply("a1"))["error"]["code"] == "forbidden"
    await director.send({"type": "asset.request_changes", "id": "d1", "asset_id": asset["id"],
                         "note": "more squash"})
    ack = await director.reply("d1")
    assert ack["type"] == "ack" and ack["data"]["decision"]["status"] == "changes_requested"
    event = await artist.next(lambda f: f.get("seq") == ack["seq"])
    assert event["type"] == "asset.changes_requested"
    assert event["data"]["decision"]["note"] == "more squash"
    await director.send({"type": "asset.approve", "id": "d2", "asset_id": asset["id"]})
    assert (await director.reply("d2"))["type"] == "ack"
    shown = await http.get(f"/api/v1/assets/{asset['id']}", headers=studio.artist.headers)
    assert shown.json()["status"] == "approved"
    for client in (artist, director):
        await client.close()


async def test_messages_are_validated_rate_limited_and_bounded(api, studio):
    client = await LiveClient.open(api, studio.director.access_token)
    await client.ws.send("not json")
    assert (await client.next())["error"]["code"] == "invalid_json"
    await client.send({"type": "asset.comment", "id": "x", "asset_id": "a", "body": "",
                       "token": "secret-never-echoed"})
    reply = await client.reply("x")
    assert reply["error"]["code"] == "validation_failed"
    assert "secret-never-echoed" not in json.dumps(reply)
    await client.send({"type": "resume", "id": "late", "last_seq": 0})
    assert (await client.reply("late"))["error"]["code"] == "resume_too_late"
    for i in range(60):
        await client.send({"type": "ping", "id": i})
    frames = await client.quiet(1.0)
    limited = [f for f in frames if f.get("type") == "error"]
    assert limited and limited[0]["error"]["code"] == "rate_limited"
    assert len([f for f in frames if f.get("type") == "pong"]) < 60
    await client.ws.send("x" * (64 * 1024 + 1))
    assert await closed_with(client) == (1009, "message too big")
    binary = await LiveClient.open(api, studio.director.access_token)
    await binary.ws.send(b"\x00\x01")
    assert (await closed_with(binary))[0] == 1003


async def test_deactivation_closes_the_socket_with_4401(api, http, studio):
    client = await LiveClient.open(api, studio.producer.access_token)
    response = await http.patch(f"/api/v1/users/{studio.producer.user_id}",
                                json={"active": False}, headers=studio.admin.headers)
    assert response.status_code == 200, response.text
    started = time.monotonic()
    assert await closed_with(client) == (4401, "token_revoked")
    assert time.monotonic() - started < 5  # FARM_WS_AUTH_RECHECK_S is 1 s in the tests


async def test_an_expiring_token_closes_the_socket_with_4401(api, studio, settings):
    from pipelines.identity.tokens import AccessTokens

    claims = jwt.decode(studio.artist.access_token, options={"verify_signature": False})
    short = AccessTokens(settings.jwt_secret.get_secret_value(), settings.jwt_issuer,
                         settings.jwt_audience, ttl_s=2)
    token, _ = short.issue(user_id=claims["sub"], studio_id=claims["studio_id"],
                           role=claims["role"], session_id=claims["sid"])
    client = await LiveClient.open(api, token)
    await client.send({"type": "ping", "id": "alive"})
    assert (await client.next())["type"] == "pong"
    assert await closed_with(client) == (4401, "token_expired")


async def test_personal_rooms_carry_mentions_to_that_user_only(api, http, studio):
    asset = await create_asset(http, studio.artist.headers)
    mentioned = await LiveClient.open(api, studio.producer.access_token)
    bystander = await LiveClient.open(api, studio.td.access_token)
    for client in (mentioned, bystander):
        await client.send({"type": "unsubscribe", "id": "u",
                           "room": f"studio:{studio.studio_id}"})
        await client.reply("u")
    response = await http.post(
        f"/api/v1/assets/{asset['id']}/comments", headers=studio.director.headers,
        json={"body": "@producer look", "mentions": [studio.producer.user_id]})
    assert response.status_code == 201, response.text
    note = await mentioned.next(is_event)
    assert note["type"] == "user.mentioned" and note["room"] == f"user:{studio.producer.user_id}"
    assert note["data"]["comment_id"] == response.json()["id"]
    assert not [f for f in await bystander.quiet(1.0) if is_event(f)]
    for client in (mentioned, bystander):
        await client.close()
