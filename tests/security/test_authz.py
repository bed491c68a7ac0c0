"""The authorization matrix, extended to everything the clients can reach.

The HTTP rows live in tests/integration/test_identity_matrix.py (MATRIX: every /api/v1
route x {A admin, A artist, A director, B admin, no credential}); that module runs them
against the Api. Here:

- every route either app serves is classified (OpenAPI document, plus the routes OpenAPI
  leaves out: the WebSocket and the gateway's), so a new route cannot be forgotten;
- the rows of the routes the upload gateway serves run again against the gateway, which
  has its own process and middleware stack;
- the socket: every room kind and every client message type, per caller, on both servers.
"""

from __future__ import annotations

import json
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from config.settings import Settings
from pipelines.events.rooms import KINDS
from serve.app import create_app, create_upload_app
from serve.realtime import messages as protocol
from tests.integration.test_identity_matrix import (
    CALLERS,
    MATRIX,
    World,
    a_fresh_asset,
    a_queued_job,
    fill,
    fresh_headers,
)
from tests.security.conftest import ERROR_KEYS, contract_error
from tests.support.live import ORIGIN, LiveClient, ws_url

# Served without a credential by design: probes, metrics and the API's own documentation.
PUBLIC = {"GET /health", "GET /ready", "GET /metrics", "GET /openapi.json", "GET /docs",
          "GET /docs/oauth2-redirect", "GET /redoc"}
WEBSOCKETS = {"WS /api/v1/ws"}
ROWS = {case.id: case for case in MATRIX}


def served_routes(app) -> set[str]:
    """`METHOD /path` of every route of a FastAPI app, routers included ("WS" for sockets)."""
    found: set[str] = set()

    def walk(routes, prefix: str) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:  # an included router (FastAPI >= 0.165)
                walk(inner.routes, prefix + route.include_context.prefix)
            elif hasattr(route, "methods") and route.methods is not None:
                found.update(f"{m} {prefix}{route.path}" for m in route.methods if m != "HEAD")
            elif hasattr(route, "path"):
                found.add(f"WS {prefix}{route.path}")
    walk(app.routes, "")
    return found


@pytest.fixture(scope="module")
def apps(settings: Settings):
    # Building an app does no I/O: clients open in its lifespan, which never runs here.
    return served_routes(create_app(settings)), served_routes(create_upload_app(settings))


async def test_every_documented_route_is_in_the_matrix_or_public(http):
    spec = (await http.get("/openapi.json")).json()
    documented = {f"{m.upper()} {path}" for path, item in spec["paths"].items() for m in item}
    unclassified = sorted(documented - set(ROWS) - PUBLIC)
    assert not unclassified, "routes with no authorization row:\n" + "\n".join(unclassified)
    for route in PUBLIC & documented:
        path = route.split()[1]
        assert "security" not in spec["paths"][path]["get"], f"{route} is documented as public"


def test_every_served_route_of_both_apps_is_classified(apps):
    api_routes, gateway_routes = apps
    for name, routes in (("api", api_routes), ("gateway", gateway_routes)):
        unknown = sorted(routes - set(ROWS) - PUBLIC - WEBSOCKETS)
        assert not unknown, f"{name} serves routes no probe covers:\n" + "\n".join(unknown)
    # The gateway serves only byte routes and the socket, never anything public.
    assert not gateway_routes & PUBLIC


def gateway_routes() -> set[str]:
    return served_routes(create_upload_app(Settings(env="test")))


@pytest.mark.parametrize("case", [ROWS[r] for r in sorted(gateway_routes() & set(ROWS))],
                         ids=lambda case: case.id)
async def test_gateway_answers_its_rows_like_the_api(http, gateway, world: World, case):
    wrong = []
    for caller, expected in zip(CALLERS, case.expect, strict=True):
        headers = await fresh_headers(http, world, caller)
        path = await fill(http, world, case.path)
        response = await gateway.request(case.method, path, headers=headers,
                                         json=case.body(world))
        if response.status_code != expected:
            wrong.append(f"{caller}: {response.status_code} (table: {expected}) "
                         f"{response.text[:200]}")
        if response.status_code >= 400:
            assert set(response.json()["error"]) == ERROR_KEYS
        if caller == "B admin":
            assert not [s for s in world.secrets if s in response.text]
    assert not wrong, f"gateway {case.id}:\n" + "\n".join(wrong)


# ---- the socket -------------------------------------------------------------------------

MEMBERS = CALLERS[:4]  # the callers with a credential, in CALLERS order


def rooms_of(world: World, asset_id: str, job_id: str) -> dict[str, tuple[str, ...]]:
    """Room -> expected answer per member: "ack" or the error code."""
    artist = world.a.artist.user_id
    return {
        f"studio:{world.a.studio_id}": ("ack", "ack", "ack", "room_forbidden"),
        f"asset:{asset_id}": ("ack", "ack", "ack", "room_not_found"),
        f"job:{job_id}": ("ack", "ack", "ack", "room_not_found"),
        f"user:{artist}": ("room_forbidden", "ack", "room_forbidden", "room_forbidden"),
    }


def messages_of(asset_id: str) -> dict[str, tuple[dict, tuple[str, ...]]]:
    """Client message type -> (message, expected answer per member)."""
    decide = ("ack", "forbidden", "ack", "asset_not_found")
    return {
        "ping": ({}, ("pong",) * 4),
        "pong": ({}, ("none",) * 4),  # flow control: never answered
        "auth": ({"token": "x"}, ("already_authenticated",) * 4),
        "resume": ({"last_seq": 0}, ("resume_too_late",) * 4),
        "subscribe": ({"room": f"asset:{asset_id}"}, ("ack", "ack", "ack", "room_not_found")),
        "unsubscribe": ({"room": f"asset:{asset_id}"}, ("ack",) * 4),
        "asset.comment": ({"asset_id": asset_id, "body": "hi"},
                          ("ack", "ack", "ack", "asset_not_found")),
        "asset.approve": ({"asset_id": asset_id}, decide),
        "asset.request_changes": ({"asset_id": asset_id, "note": "n"}, decide),
    }


def test_every_message_type_and_room_kind_has_a_row():
    assert set(messages_of("x")) == set(protocol.TYPES)
    assert {room.split(":")[0] for room in rooms_of(_STUB, "a", "j")} == set(KINDS)


class _Stub:
    studio_id = "s"

    class artist:  # noqa: N801 - stands in for a Member
        user_id = "u"


_STUB = World(a=_Stub, b=_Stub)  # type: ignore[arg-type]


async def answer(client: LiveClient, kind: str) -> str:
    if kind == "none":  # events of the rooms joined may arrive meanwhile: not answers
        replies = [f for f in await client.quiet(0.3)
                   if f.get("id") == "m" or f.get("type") in ("pong", "error")]
        return f"answered {replies}" if replies else "none"
    frame = await client.next(lambda f: f.get("id") == "m" or f.get("type") == "pong")
    if frame["type"] == "error":
        assert set(frame["error"]) == ERROR_KEYS, frame
        return frame["error"]["code"]
    return frame["type"]


@pytest.fixture(params=["api", "gateway"])
def socket_base(request, api, settings) -> str:
    return api if request.param == "api" else settings.upload_url


async def test_socket_rooms_and_messages_per_caller(http, socket_base, world: World):
    asset_id = await a_fresh_asset(http, world)
    job_id = await a_queued_job(http, world)
    wrong = []
    for caller_index, caller in enumerate(MEMBERS):
        token = (await fresh_headers(http, world, caller))["Authorization"].split()[1]
        client = await LiveClient.open(socket_base, token)
        for room, expected in rooms_of(world, asset_id, job_id).items():
            await client.send({"type": "subscribe", "id": "m", "room": room})
            got = await answer(client, "ack")
            if got != expected[caller_index]:
                wrong.append(f"{caller} subscribe {room}: {got}, table: {expected[caller_index]}")
        for kind, (fields, expected) in messages_of(asset_id).items():
            await client.send({"type": kind, "id": "m", **fields})
            got = await answer(client, expected[caller_index])
            if got != expected[caller_index]:
                wrong.append(f"{caller} {kind}: {got}, table: {expected[caller_index]}")
        if caller == "B admin":
            leaked = [f for f in await client.quiet(0.5) if world.a.studio_id in json.dumps(f)]
            assert not leaked, leaked
        await client.close()
    assert not wrong, "\n".join(wrong)


async def test_socket_without_a_credential_is_refused(socket_base):
    with pytest.raises(InvalidStatus) as refused:  # "bearer" offered with no token
        await connect(ws_url(socket_base), subprotocols=["bearer"],
                      additional_headers={"Origin": ORIGIN})
    body = json.loads(refused.value.response.body)
    assert refused.value.response.status_code == 401 and set(body["error"]) == ERROR_KEYS
    for first in ({"type": "subscribe", "id": 1, "room": "studio:x"},
                  {"type": "asset.comment", "asset_id": "x", "body": "anonymous"},
                  {"type": "auth", "token": f"sfk_{uuid.uuid4().hex}"}):
        async with connect(ws_url(socket_base)) as ws:
            await ws.send(json.dumps(first))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_an_anonymous_http_request_is_401_on_every_route(http, gateway, world: World,
                                                              apps):
    """The last column of the matrix, once more on every route either app serves (rows or
    not yet), on both servers, with the credential challenge."""
    api_routes, on_gateway = apps
    for route in sorted(api_routes - PUBLIC - WEBSOCKETS):
        method, template = route.split()
        case = ROWS.get(route)
        if case is not None and case.public:
            continue
        path = template.replace("{", "").replace("}", "")  # nothing is looked up first
        body = case.body(world) if case else None
        for client in [http] + ([gateway] if route in on_gateway else []):
            response = await client.request(method, path, json=body)
            contract_error(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer")
