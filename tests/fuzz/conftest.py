"""One `farm up` for the fuzz tests, started as a user starts it, and two studios in it.

The two studios' admins are the identities the fuzzer sends requests as; neither may see the
other's objects (schemathesis's `object_level_authorization` check compares them).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.identity import register_studio
from tests.support.mail import Mailbox, verify_email
from tests.support.services import wait_ready
from tests.support.system import FarmUp, farm_running

# Settings the fuzz stack changes from the embedded defaults, each for a reason:
FUZZ_SETTINGS = {
    # The fuzzer sends thousands of requests a minute from one address. The rate limiter
    # has its own tests (tests/integration/test_rate_limit.py); here it would only turn
    # most requests into 429s and hide what lies behind them.
    "FARM_RATE_LIMIT_REQUESTS": "1000000",
    # Every register, login and new user hashes a password; at the default cost (12) each
    # hash takes ~0.3 s of the machine's two cores. The integration suite uses 4 too.
    "FARM_BCRYPT_ROUNDS": "4",
    # The fuzzer declares far more uploads than a studio keeps open; the limit (a 429) is
    # tested in tests/integration/test_uploads.py, and would stop every later declaration.
    "FARM_STUDIO_MAX_OPEN_UPLOADS": "100000",
    # Tokens are minted once before the run; the long run (`make fuzz`) must not outlive them.
    "FARM_ACCESS_TOKEN_TTL_S": "3600",
}

PEERS = ("studio-a", "studio-b")


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FarmUp]:
    with farm_running(tmp_path_factory.mktemp("fuzz-farm-up"), **FUZZ_SETTINGS) as up:
        wait_ready(up.api)
        yield up


@pytest.fixture(scope="package")
def auth_file(stack: FarmUp, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Web Fuzzing Commons auth document: one admin bearer token per studio."""

    async def admins() -> list[str]:
        async with httpx.AsyncClient(base_url=stack.api, timeout=30) as http:
            studios = [await register_studio(http, roles=()) for _ in PEERS]
            mailbox = Mailbox(stack.mail_dir)  # `farm up` asks for confirmation
            for studio in studios:
                await verify_email(http, mailbox, studio.admin.email, studio.admin.headers)
            for studio in studios:
                # A job of each studio before the run (it never runs: no node has the tag),
                # so that steps on /jobs/{id} reach one through ids seen in GET /jobs: a
                # generated submission passes every rule rarely (a job it runs `after`
                # must exist, a layered graph must be sound).
                seeded = await http.post("/api/v1/jobs", headers=studio.admin.headers, json={
                    "kind": "command", "command": ["true"], "frames": "1-2",
                    "requirements": {"tags": ["fuzz-never"]}})
                assert seeded.status_code == 201, seeded.text
        return [studio.admin.access_token for studio in studios]

    tokens = asyncio.run(admins())
    document = {"schemaVersion": "0.2.0", "auth": [
        {"name": name,
         "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {token}"}]}
        for name, token in zip(PEERS, tokens, strict=True)
    ]}
    path = tmp_path_factory.mktemp("fuzz-auth") / "auth.json"
    path.write_text(json.dumps(document, indent=1))
    return path
