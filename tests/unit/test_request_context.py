"""Request ids reach every JSON log line; crashes leave through the error contract."""

from __future__ import annotations

import io
import json
import logging

import httpx
from fastapi import FastAPI

from pipelines.logs import configure_logging
from serve.errors import install_error_handlers
from serve.middleware import RequestContextMiddleware


def build_app(**options) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    log = logging.getLogger("farm.test")

    @app.get("/work")
    async def work() -> dict:
        log.info("first step")
        log.warning("second step", extra={"frames": 24})
        return {"ok": True}

    @app.get("/crash")
    async def crash() -> dict:
        raise RuntimeError("secret internals /etc/farm.conf")

    @app.get("/db-gone")
    async def db_gone() -> dict:
        from pymongo.errors import AutoReconnect

        raise AutoReconnect("127.0.0.1:27017: connection closed")

    @app.get("/items/{n}")
    async def item(n: int) -> dict:
        return {"n": n}

    app.add_middleware(RequestContextMiddleware, **options)
    return app


async def _get(app: FastAPI, path: str, **kwargs) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path, **kwargs)


async def test_every_log_line_of_a_request_carries_its_id():
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    await _get(build_app(), "/work", headers={"X-Request-ID": "req-42"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["first step", "second step"]
    assert all(line["request_id"] == "req-42" for line in lines)
    assert lines[1]["frames"] == 24


async def test_unexpected_exception_is_500_without_internals():
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    response = await _get(build_app(), "/crash")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert "secret" not in response.text and "Traceback" not in response.text
    assert response.headers["x-request-id"] == error["request_id"]
    assert response.headers["x-content-type-options"] == "nosniff"
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert any("RuntimeError" in line.get("exc", "") for line in logged)  # ops still see it


async def test_validation_error_is_422_in_the_contract():
    response = await _get(build_app(), "/items/not-a-number")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["details"][0]["loc"] == ["path", "n"]
    assert "not-a-number" not in response.text  # input is never echoed


async def test_a_lost_database_connection_is_503_not_500():
    response = await _get(build_app(), "/db-gone")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dependency_unavailable"
    assert "27017" not in response.text


async def test_unsafe_request_id_is_replaced():
    response = await _get(build_app(), "/work", headers={"X-Request-ID": "x" * 500})
    assert response.headers["x-request-id"] != "x" * 500


async def test_hsts_only_when_tls_is_terminated_by_a_trusted_proxy():
    trusted = build_app(trust_forwarded_proto=True)
    forwarded = {"X-Forwarded-Proto": "https"}
    assert "strict-transport-security" in (await _get(trusted, "/work", headers=forwarded)).headers
    untrusted = build_app(trust_forwarded_proto=False)
    assert "strict-transport-security" not in (
        await _get(untrusted, "/work", headers=forwarded)).headers
