"""Integers past what MongoDB holds (2^63 and up) are refused as input (422, the error
contract), never carried into a query where the driver would fail with a 500."""

from __future__ import annotations

import pytest

from tests.support.assets import create_asset, upload_simple
from tests.support.identity import register_studio

TOO_BIG = 2**63


@pytest.fixture
async def studio(http):
    return await register_studio(http, roles=("td", "director"))


async def test_version_numbers_past_64_bits_are_a_422_everywhere(http, studio, mp4_bytes):
    headers = studio.td.headers
    asset = await create_asset(http, headers)
    await upload_simple(http, headers, asset["id"], mp4_bytes)
    base = f"/api/v1/assets/{asset['id']}"
    requests = [
        ("GET", f"{base}/versions/{TOO_BIG}/download", None),
        ("GET", f"{base}/versions/{TOO_BIG}/previews", None),
        ("GET", f"{base}/comments?version={TOO_BIG}", None),
        ("POST", f"{base}/comments", {"body": "x", "version": TOO_BIG}),
        ("POST", f"{base}/decisions", {"decision": "approve", "version": TOO_BIG}),
        ("POST", "/api/v1/jobs", {"kind": "preview", "asset_id": asset["id"],
                                  "version": TOO_BIG}),
        ("POST", "/api/v1/jobs", {"kind": "render", "render": {
            "scene": {"asset_id": asset["id"], "version": TOO_BIG},
            "target_asset_id": asset["id"]}}),
    ]
    for method, url, body in requests:
        who = studio.director.headers if "decisions" in url else headers
        response = await http.request(method, url, json=body, headers=who)
        assert response.status_code == 422, (method, url, response.text)
        assert response.json()["error"]["code"], response.text
    largest = await http.get(f"{base}/versions/{TOO_BIG - 1}/download", headers=headers)
    assert largest.status_code == 404  # the largest stored integer is a valid question
