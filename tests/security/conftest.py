"""Shared pieces of the security probes: two studios, the gateway, the error contract.

Everything runs against the session's real services (tests/conftest.py): the Serve app,
the upload gateway actor, the embedded database and object store. No extra cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

# Studio A (admin, artist, director, td) and studio B (admin only), as in the matrix.
from tests.integration.test_identity_matrix import World, world  # noqa: F401

ERROR_KEYS = {"code", "message", "details", "request_id"}


def contract_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """The response is `status` in the one error shape (and `code`, when given)."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS, error
    assert error["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert error["code"] == code, error
    return error


@pytest.fixture
async def gateway(api, settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=settings.upload_url, timeout=60) as client:
        yield client
