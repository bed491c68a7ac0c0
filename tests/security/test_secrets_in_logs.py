"""No secret reaches a log: after a full flow (register, login, refresh, an API key made and
used, uploads both ways, a job, the socket), every log file of the run is searched for the
JWT secret, the passwords, the access and refresh tokens, the API key and the S3 keys.

Where logs go: the Api replicas and the gateway write JSON lines (pipelines/logs.py) to
stderr, which Ray keeps in the session's logs folder (worker-*.err/out, serve/*.log); the
embedded database and object store log into the data dir. `farm up` writes the same
places under its own data dir (tests/system covers that process).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from tests.support.assets import create_asset, declare, put_direct, upload_simple
from tests.support.identity import bearer, login, register_body
from tests.support.live import LiveClient

LOG_SUFFIXES = (".log", ".err", ".out", ".txt")


def log_files(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*")
            if p.is_file() and (p.suffix in LOG_SUFFIXES or "logs" in p.parts)]


async def full_flow(http, api, gateway, mp4_bytes) -> dict[str, str]:
    """Every secret the flow handles, by name."""
    password = f"pw-{uuid.uuid4().hex}"
    body = register_body(password=password)
    registered = await http.post("/api/v1/auth/register", json=body)
    assert registered.status_code == 201, registered.text
    wrong = await login(http, body["studio_slug"], body["email"], f"{password}-wrong")
    assert wrong.status_code == 401
    tokens = (await login(http, body["studio_slug"], body["email"], password)).json()
    refreshed = (await http.post("/api/v1/auth/refresh",
                                 json={"refresh_token": tokens["refresh_token"]})).json()
    headers = bearer(refreshed["access_token"])
    key = (await http.post("/api/v1/api-keys", json={"name": "ci"}, headers=headers)).json()
    with_key = bearer(key["key"])
    asset = await create_asset(http, with_key)
    assert (await upload_simple(gateway, with_key, asset["id"], mp4_bytes)).status_code == 201
    session = await declare(http, headers, asset["id"], mp4_bytes)
    parts = await put_direct(session, mp4_bytes)
    done = await http.post(f"/api/v1/uploads/{session['id']}/complete", json={"parts": parts},
                           headers=headers)
    assert done.status_code == 201, done.text
    job = await http.post("/api/v1/jobs", headers=with_key, json={
        "kind": "command", "frames": "1", "command": ["true"],
        "requirements": {"tags": ["never-runs"]}})
    assert job.status_code == 201, job.text
    client = await LiveClient.open(api, refreshed["access_token"], via_message=True)
    await client.close()
    # Failures log more than successes: a bad key, a replayed refresh token (which ends
    # the session: last).
    await http.get("/api/v1/auth/me", headers=bearer(key["key"] + "x"))
    await http.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    new_password = f"pw-{uuid.uuid4().hex}"
    changed = await http.post("/api/v1/auth/password", headers=with_key, json={
        "current_password": password, "new_password": new_password})
    assert changed.status_code in (200, 403), changed.text
    return {"password": password, "new password": new_password,
            "access token": tokens["access_token"],
            "refreshed access token": refreshed["access_token"],
            "refresh token": tokens["refresh_token"],
            "rotated refresh token": refreshed["refresh_token"], "api key": key["key"]}


@pytest.mark.timeout(240)
async def test_no_secret_in_any_log(http, api, gateway, settings, services, ray_cluster,
                                    mp4_bytes):
    secrets = await full_flow(http, api, gateway, mp4_bytes)
    secrets |= {"jwt secret": settings.jwt_secret.get_secret_value(),
                "s3 secret key": settings.s3_secret_key.get_secret_value(),
                "s3 access key": settings.s3_access_key.get_secret_value()}
    await asyncio.sleep(2)  # Ray moves worker output to its files once a second
    ray_logs = Path(ray_cluster.head_node.get_logs_dir_path())
    files = log_files(ray_logs, Path(services.data_dir))
    assert any(p.name.startswith("worker-") for p in files), "Ray's worker logs not found"
    found = []
    for path in files:
        text = path.read_text(errors="replace")
        found += [f"{name} in {path}" for name, value in secrets.items() if value in text]
        # The part that identifies a secret is enough to replay it for tokens and keys.
        found += [f"{name} (signature) in {path}" for name, value in secrets.items()
                  if "token" in name and value.count(".") == 2 and value.split(".")[2] in text]
    assert not found, "secrets in logs:\n" + "\n".join(found)


def test_no_secret_on_any_command_line(settings):
    """Any local user can read every process's command line (`ps`): the embedded object
    store takes its keys by environment, which only its owner can read."""
    secret = settings.s3_secret_key.get_secret_value()
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone since the listing
            continue
        if secret in argv:
            found.append(f"{cmdline.parent.name}: {argv[:80]}")
    assert not found, found
