"""Forged, stale and misused credentials: every one is a 401 in the error contract, on the
Api, on the upload gateway and at the socket's door.

tests/integration/test_identity_auth.py checks the common forgeries on /auth/me; this
module is the full table, over every way in.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.test_identity_matrix import World
from tests.security.conftest import ERROR_KEYS, contract_error
from tests.support.identity import bearer, create_key, login
from tests.support.live import ORIGIN, ws_url


@dataclass
class Creds:
    """Genuine credentials of studio A's TD, to forge from."""
    access: str
    refresh: str
    key: str
    revoked_key: str
    claims: dict
    secret: str


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def with_header(token: str, header: dict, signature: str = "") -> str:
    return f"{b64(json.dumps(header).encode())}.{token.split('.')[1]}.{signature}"


def signed(c: Creds, alg: str = "HS256", key: str | None = None, **claims: object) -> str:
    return jwt.encode(c.claims | claims, key or c.secret, algorithm=alg)


def flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1:]


# Forging HS384/HS512 with the (test) HS256 secret is the point, short key or not.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
now = time.time
# name -> how to make the attack's credential from genuine ones
ATTACKS: dict[str, Callable[[Creds], str]] = {
    **{f"alg {alg}": (lambda c, alg=alg: with_header(c.access, {"alg": alg, "typ": "JWT"}))
       for alg in ("none", "None", "NONE", "nOnE")},
    "alg none with the old signature": lambda c: with_header(
        c.access, {"alg": "none", "typ": "JWT"}, c.access.split(".")[2]),
    "alg missing": lambda c: with_header(c.access, {"typ": "JWT"}, c.access.split(".")[2]),
    "HS512 with the same secret": lambda c: signed(c, "HS512"),
    "HS384 with the same secret": lambda c: signed(c, "HS384"),
    "another key": lambda c: signed(c, key="x" * 48),
    "wrong audience": lambda c: signed(c, aud="another-api"),
    "audience list": lambda c: signed(c, aud=[c.claims["aud"], "another-api"]),
    "wrong issuer": lambda c: signed(c, iss="evil-farm"),
    "expired": lambda c: signed(c, iat=now() - 2000, exp=now() - 1000),
    "issued in the future": lambda c: signed(c, iat=now() + 3600, exp=now() + 3600 + 900),
    "lifetime longer than issued": lambda c: signed(c, exp=c.claims["iat"] + 86400 * 365),
    "refresh type claim": lambda c: signed(c, typ="refresh"),
    "role raised in a re-signed token": lambda c: signed(c, role="admin"),
    "another studio claimed": lambda c: signed(c, studio_id=uuid.uuid4().hex),
    "refresh token as access": lambda c: c.refresh,
    "tampered signature": lambda c: flip(c.access, len(c.access) - 5),
    "tampered payload": lambda c: ".".join([c.access.split(".")[0], b64(json.dumps(
        c.claims | {"role": "admin"}).encode()), c.access.split(".")[2]]),
    "signature stripped": lambda c: c.access.rsplit(".", 1)[0] + ".",
    "api key tampered": lambda c: flip(c.key, len(c.key) - 3),
    "api key revoked": lambda c: c.revoked_key,
    "api key truncated": lambda c: c.key[:-6],
    "api key without its prefix": lambda c: c.key.removeprefix("sfk_"),
    "refresh token prefix on an api key": lambda c: "sfr_" + c.key.removeprefix("sfk_"),
}


@pytest.fixture(scope="module")
async def creds(api, world: World, settings) -> Creds:
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        td = world.a.td
        session = (await login(http, world.a.slug, td.email, td.password)).json()
        key = (await create_key(http, td))["key"]
        revoked = await create_key(http, td)
        gone = await http.delete(f"/api/v1/api-keys/{revoked['id']}", headers=td.headers)
        assert gone.status_code == 204, gone.text
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    return Creds(session["access_token"], session["refresh_token"], key, revoked["key"],
                 claims, settings.jwt_secret.get_secret_value())


async def test_the_genuine_credentials_work(http, creds):
    """The control: without it every 401 below could be a broken fixture."""
    for token in (creds.access, creds.key, signed(creds)):
        assert (await http.get("/api/v1/auth/me", headers=bearer(token))).status_code == 200


@pytest.mark.parametrize("attack", ATTACKS)
async def test_attack_is_401_on_the_api_and_the_gateway(http, gateway, creds, attack):
    token = ATTACKS[attack](creds)
    for client, method, path in ((http, "GET", "/api/v1/auth/me"),
                                 (http, "POST", "/api/v1/jobs"),
                                 (gateway, "PUT", f"/api/v1/uploads/{uuid.uuid4().hex}/parts/1")):
        response = await client.request(method, path, headers=bearer(token),
                                        json={"kind": "command"})
        error = contract_error(response, 401)
        assert error["code"] in {"invalid_token", "token_expired", "invalid_api_key",
                                 "token_revoked"}, error
        assert token not in response.text


@pytest.mark.parametrize("attack", ATTACKS)
async def test_attack_is_refused_at_the_socket(api, creds, attack):
    token = ATTACKS[attack](creds)
    if token and all(ch.isalnum() or ch in "-_." for ch in token):  # a valid subprotocol
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(api), subprotocols=["bearer", token],
                          additional_headers={"Origin": ORIGIN})
        body = json.loads(refused.value.response.body)
        assert refused.value.response.status_code == 401 and set(body["error"]) == ERROR_KEYS
    async with connect(ws_url(api)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_api_key_misuse_is_401(http, creds):
    # A key is not a refresh token, an access token is not a refresh token either.
    for token in (creds.key, creds.access):
        contract_error(await http.post("/api/v1/auth/refresh", json={"refresh_token": token}),
                       401)
    # A key in the query string or a cookie is not a credential.
    contract_error(await http.get("/api/v1/auth/me", params={"api_key": creds.key}), 401)
    contract_error(await http.get("/api/v1/auth/me",
                                  headers={"Cookie": f"access_token={creds.access}"}), 401)
    # Other schemes carrying a good secret are not the bearer scheme.
    for scheme in ("Basic", "Token", "JWT"):
        contract_error(await http.get("/api/v1/auth/me",
                                      headers={"Authorization": f"{scheme} {creds.key}"}), 401)
