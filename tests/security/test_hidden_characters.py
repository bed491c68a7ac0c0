"""Names with characters that hide or disguise text (NUL, CR/LF, escape, right-to-left
override, zero-width, isolates) are a 422 in the error contract wherever a person's, an
asset's, a job's, a key's or a file's name or a tag enters, and nothing is stored.

tests/unit/test_names.py checks the rule itself; this is every door it must guard.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.integration.test_identity_matrix import World, fresh_headers
from tests.security.conftest import contract_error
from tests.support.assets import create_asset
from tests.support.identity import PASSWORD, register_body

HIDDEN = {"NUL": "\x00", "CRLF": "\r\n", "ESC": "\x1b[31m", "RLO": "\u202e",
          "ZWSP": "\u200b", "isolate": "\u2066", "BOM": "\ufeff"}


def name_with(ch: str, marker: str) -> str:
    return f"{marker}{ch}gpj.exe"


Door = Callable[[httpx.AsyncClient, World, str], Awaitable[httpx.Response]]


async def _as(http, world, caller="A admin") -> dict:
    return await fresh_headers(http, world, caller)


async def asset_name(http, world, name):
    return await http.post("/api/v1/assets", json={"name": name, "kind": "prop"},
                           headers=await _as(http, world))


async def asset_rename(http, world, name):
    headers = await _as(http, world)
    asset = await create_asset(http, headers)
    return await http.patch(f"/api/v1/assets/{asset['id']}", json={"name": name},
                            headers=headers)


async def asset_tag(http, world, name):
    return await http.post("/api/v1/assets", headers=await _as(http, world),
                           json={"name": "tagged", "kind": "prop", "tags": [name]})


async def job_name(http, world, name):
    return await http.post("/api/v1/jobs", headers=await _as(http, world), json={
        "kind": "command", "name": name, "frames": "1", "command": ["true"],
        "requirements": {"tags": ["never-runs"]}})


async def job_tag(http, world, name):
    return await http.post("/api/v1/jobs", headers=await _as(http, world), json={
        "kind": "command", "frames": "1", "command": ["true"], "requirements": {"tags": [name]}})


async def user_name(http, world, name):
    return await http.post("/api/v1/users", headers=await _as(http, world), json={
        "email": f"u-{uuid.uuid4().hex[:8]}@example.com", "name": name, "password": PASSWORD})


async def user_rename(http, world, name):
    return await http.patch(f"/api/v1/users/{world.a.td.user_id}", json={"name": name},
                            headers=await _as(http, world))


async def register_names(http, world, name):
    return await http.post("/api/v1/auth/register",
                           json=register_body() | {"name": name, "studio_name": name})


async def key_name(http, world, name):
    return await http.post("/api/v1/api-keys", json={"name": name},
                           headers=await _as(http, world))


async def declared_file_name(http, world, name):
    headers = await _as(http, world)
    asset = await create_asset(http, headers)
    return await http.post(f"/api/v1/assets/{asset['id']}/uploads",
                           json={"filename": name, "size": 100}, headers=headers)


def raw_form(filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart body with the file name's bytes as they are (clients escape some)."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: video/mp4\r\n\r\n').encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), boundary


async def form_file_name(http, world, name, data: bytes = b""):
    headers = await _as(http, world)
    asset = await create_asset(http, headers)
    body, boundary = raw_form(name.replace("\r\n", " \x00"), data or _MEDIA[0])
    return await http.post(f"/api/v1/assets/{asset['id']}/file", content=body, headers={
        **headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})


_MEDIA: list[bytes] = []
DOORS: dict[str, Door] = {
    "asset name": asset_name, "asset rename": asset_rename, "asset tag": asset_tag,
    "job name": job_name, "job tag": job_tag, "user name": user_name,
    "user rename": user_rename, "register names": register_names, "api key name": key_name,
    "declared file name": declared_file_name, "form file name": form_file_name,
}


@pytest.mark.parametrize("door", DOORS)
async def test_hidden_characters_are_422_and_store_nothing(http, db, world, mp4_bytes, door):
    _MEDIA[:] = [mp4_bytes]
    wrong = []
    for label, ch in HIDDEN.items():
        marker = f"hid{uuid.uuid4().hex[:8]}"
        response = await DOORS[door](http, world, name_with(ch, marker))
        if response.status_code != 422:
            wrong.append(f"{label}: {response.status_code} {response.text[:200]}")
            continue
        error = contract_error(response, 422)
        assert error["code"] == "validation_failed", error
        for collection in ("assets", "jobs", "users", "studios", "api_keys", "uploads",
                           "asset_versions"):
            for field in ("name", "filename", "tags", "studio_name"):
                held = await db[collection].find_one({field: {"$regex": marker}})
                assert held is None, f"{door} {label}: stored in {collection}.{field}"
    assert not wrong, f"{door} let hidden characters in:\n" + "\n".join(wrong)


async def test_visible_names_in_any_script_still_pass(http, world, mp4_bytes):
    """The control: the rule refuses disguise, not languages (joiners stay, for Persian
    names and emoji)."""
    _MEDIA[:] = [mp4_bytes]
    for name in ("Ōkami — shot 010", "نسخه\u200cی نهایی", "👩\u200d🎨 pass 2", "клип.mp4"):
        for door in (asset_name, job_name, declared_file_name, form_file_name):
            response = await door(http, world, name)
            assert response.status_code == 201, (door.__name__, name, response.text)
