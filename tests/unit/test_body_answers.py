"""A body the API cannot read gets one precise answer, whatever is wrong with it."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from pipelines.assets.models import AssetCreate
from pipelines.errors import InvalidInput
from pipelines.farm.models import JobPatch
from pipelines.identity.models import UserCreate, UserPatch
from pipelines.review.models import CommentCreate
from serve.errors import install_error_handlers
from serve.streaming import MAX_FILENAME_CHARS, form_file
from tests.unit.test_upload_streams import form_request, multipart


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/assets")
    async def create(body: AssetCreate) -> dict:
        return {"name": body.name}

    return app


async def post(content: bytes, content_type: str = "application/json") -> httpx.Response:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post("/assets", content=content,
                                 headers={"Content-Type": content_type})


UNREADABLE = {
    "truncated": b'{"name": "ship", "kind": "pr',
    "invalid UTF-8": b'{"name": "\xff\xfe", "kind": "prop"}',
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,
    "5,000-digit number": b'{"name": "ship", "kind": "prop", "tags": [' + b"9" * 5000 + b"]}",
    "not JSON at all": b"name=ship",
}


@pytest.mark.parametrize("body", UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_every_unreadable_json_body_is_400_malformed_json(body: bytes):
    response = await post(body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_json"


async def test_a_readable_but_invalid_body_stays_422():
    response = await post(b'{"name": "ship", "kind": "spaceship"}')
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"
    assert (await post(b'{"name": "ship", "kind": "prop"}')).status_code == 200


async def test_a_body_in_another_media_type_is_415():
    response = await post(b"name: ship", "text/plain")
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("length", [MAX_FILENAME_CHARS + 1, 5000, 20_000])
async def test_a_too_long_upload_file_name_is_named_as_such(length: int):
    body, content_type = multipart({"file": ("a" * (length - 4) + ".mov", b"abc", None)})
    with pytest.raises(InvalidInput) as refused:
        await form_file(form_request(body, content_type), limit=1 << 20, idle_s=5)
    assert refused.value.code == "file_name_too_long"


async def test_a_file_name_at_the_limit_is_taken():
    name = "a" * (MAX_FILENAME_CHARS - 4) + ".mov"
    body, content_type = multipart({"file": (name, b"abc", None)})
    incoming = await form_file(form_request(body, content_type), limit=1 << 20, idle_s=5)
    assert incoming.filename == name


async def test_a_405_allows_every_method_of_the_path():
    app = build_app()

    @app.get("/assets")
    async def listing() -> dict:
        return {}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.delete("/assets")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("body", [
    {"priority": False}, {"priority": "7"}, {"priority": 7.5},
], ids=["boolean", "string", "fraction"])
def test_numbers_in_bodies_are_json_numbers(body: dict):
    with pytest.raises(ValidationError):
        JobPatch.model_validate(body)
    assert JobPatch.model_validate({"priority": 7}).priority == 7


def test_booleans_and_points_are_not_coerced():
    with pytest.raises(ValidationError):
        UserPatch.model_validate({"active": 1})
    stroke = {"points": [[0.5, False]]}
    with pytest.raises(ValidationError):
        CommentCreate.model_validate({"body": "x", "annotation": {"strokes": [stroke]}})


@pytest.mark.parametrize("email", ["\u00de@v\u0087.o", "a\b@b.co", "a@b.c\u007fo"])
def test_control_characters_make_no_email(email: str):
    with pytest.raises(ValidationError):
        UserCreate.model_validate({"email": email, "name": "Li", "password": "p" * 12})
