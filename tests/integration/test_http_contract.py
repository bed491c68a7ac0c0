"""Cross-cutting HTTP behaviour, through the real Serve proxy and two Api replicas."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx

ERROR_KEYS = {"code", "message", "details", "request_id"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    return error


async def test_health_answers(http: httpx.AsyncClient):
    response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_lists_every_dependency_without_secrets(http, settings):
    response = await http.get("/ready")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert set(checks) == {"database", "storage", "ray", "dispatcher", "ffmpeg"}
    assert all(c["status"] == "ok" and c["latency_ms"] >= 0 for c in checks.values())
    for secret in (settings.s3_secret_key, settings.s3_access_key, settings.jwt_secret):
        assert secret.get_secret_value() not in response.text


async def test_request_id_is_echoed_once_and_generated_when_missing(http):
    given = f"trace-{uuid.uuid4().hex}"
    response = await http.get("/health", headers={"X-Request-ID": given})
    assert response.headers.get_list("x-request-id") == [given]
    generated = (await http.get("/health")).headers.get_list("x-request-id")
    assert len(generated) == 1 and len(generated[0]) >= 16


async def test_unknown_route_and_wrong_method_use_the_error_contract(http):
    assert_error(await http.get("/api/v1/no-such-thing"), 404, "not_found")
    assert_error(await http.post("/health"), 405, "method_not_allowed")


async def test_security_headers_on_every_response(http):
    for path in ("/health", "/api/v1/missing"):
        headers = (await http.get(path)).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        # Plain http and no trusted proxy: HSTS would be a lie.
        assert "strict-transport-security" not in headers


async def test_cors_allows_only_listed_origins(http):
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = await http.options("/health",
                                 headers={"Origin": "http://studio.example", **preflight})
    assert allowed.headers["access-control-allow-origin"] == "http://studio.example"
    refused = await http.options("/health", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in refused.headers
    simple = await http.get("/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


async def test_json_body_over_the_limit_is_413(http, settings):
    body = b'{"x": "' + b"a" * settings.json_body_limit_bytes + b'"}'
    headers = {"Content-Type": "application/json"}
    assert_error(await http.post("/api/v1/anything", content=body, headers=headers),
                 413, "payload_too_large")

    async def chunks():  # no Content-Length: the limit must still hold
        for _ in range(len(body) // 8192 + 1):
            yield b"a" * 8192

    assert_error(await http.post("/api/v1/anything", content=chunks(), headers=headers),
                 413, "payload_too_large")


def _counter(text: str, route: str, status: str) -> float:
    labels = f'method="GET",route="{re.escape(route)}",status="{status}"'
    pattern = rf"^farm_http_requests_total{{{labels}}} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def settled_health_count(http, at_least: float = 0.0, within_s: float = 20.0) -> float:
    """The summed /health count once it reaches `at_least` and two reports agree.

    Replicas report about once a second; a loaded machine may delay a report, so the test
    waits for the sum to stop moving rather than for a fixed time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    last = None
    while True:
        count = _counter((await http.get("/metrics")).text, "/health", "200")
        if count == last and count >= at_least or loop.time() > deadline:
            return count
        last = count
        await asyncio.sleep(1.2)


async def test_metrics_sum_requests_over_all_replicas(http):
    before = await settled_health_count(http)
    # Separate connections so the proxy spreads them over both replicas.
    async def one() -> None:
        async with httpx.AsyncClient(base_url=str(http.base_url)) as client:
            assert (await client.get("/health")).status_code == 200

    await asyncio.gather(*(one() for _ in range(30)))
    assert await settled_health_count(http, at_least=before + 30) - before == 30
    text = (await http.get("/metrics")).text
    # Both Api replicas report (the upload gateway may be a further source).
    assert int(re.search(r"^farm_metrics_sources (\d+)", text, re.MULTILINE).group(1)) >= 2
    bucket = 'farm_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/health"}'
    assert bucket in text
