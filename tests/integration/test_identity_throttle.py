"""Login throttling over HTTP: per account and per client address, 429 with Retry-After.

Each test sends from its own loopback address (Linux routes all of 127.0.0.0/8 to lo), so
the per-address counters of other tests, which send from 127.0.0.1, are not touched.
"""

from __future__ import annotations

import random
import uuid

import httpx

from tests.integration.test_http_contract import assert_error
from tests.support.identity import PASSWORD, register_studio


def loopback() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def client_from(api: str, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=api, transport=transport, timeout=30)


async def attempt(client: httpx.AsyncClient, slug: str, email: str, password: str):
    return await client.post("/api/v1/auth/login",
                             json={"studio": slug, "email": email, "password": password})


async def test_the_proxy_passes_the_client_address(http, api):
    ctx = await register_studio(http, roles=())
    address = loopback()
    async with client_from(api, address) as client:
        assert (await attempt(client, ctx.slug, ctx.admin.email, "wrong")).status_code == 401
    audit = await http.get("/api/v1/audit", params={"action": "auth.login_failed"},
                           headers=ctx.admin.headers)
    assert [e["client"] for e in audit.json()["items"]] == [address]


async def test_ten_failures_lock_the_account_for_a_while_whatever_the_password(http, api):
    ctx = await register_studio(http, roles=())
    async with client_from(api, loopback()) as client:
        for _ in range(10):
            answer = await attempt(client, ctx.slug, ctx.admin.email, "wrong password")
            assert_error(answer, 401, "invalid_credentials")
        locked = await attempt(client, ctx.slug, ctx.admin.email, PASSWORD)
    assert_error(locked, 429, "login_throttled")
    assert 1 <= int(locked.headers["retry-after"]) <= 300
    # The account, not the address: another address is refused too, before any check.
    async with client_from(api, loopback()) as other:
        assert_error(await attempt(other, ctx.slug, ctx.admin.email, PASSWORD),
                     429, "login_throttled")
        # Other accounts are not affected.
        fresh = await register_studio(http, roles=())
        assert (await attempt(other, fresh.slug, fresh.admin.email, PASSWORD)).status_code == 200


async def test_an_address_spraying_many_accounts_is_throttled(http, api):
    ctx = await register_studio(http, roles=())
    address = loopback()
    async with client_from(api, address) as client:
        for _ in range(30):  # one guess each at many accounts, from one address
            email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
            assert_error(await attempt(client, ctx.slug, email, "Summer2024!"),
                         401, "invalid_credentials")
        throttled = await attempt(client, ctx.slug, ctx.admin.email, PASSWORD)
    assert_error(throttled, 429, "login_throttled")
    assert int(throttled.headers["retry-after"]) >= 1
    async with client_from(api, loopback()) as other:
        assert (await attempt(other, ctx.slug, ctx.admin.email, PASSWORD)).status_code == 200
