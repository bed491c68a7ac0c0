"""One `farm up` for the system tests, started as a user starts it (tests/support/system.py).

Package-scoped: it is stopped, and checked to leave nothing behind, before other suites
build their own clusters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support import contract
from tests.support.system import TURNTABLE, FarmUp, farm_running, install_plugin


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FarmUp]:
    # A studio's own job type, installed beside the farm as a studio installs its package
    # (on the farm's Python path); tests/system/test_job_types.py submits it.
    plugins = install_plugin(TURNTABLE, tmp_path_factory.mktemp("site"))
    with farm_running(tmp_path_factory.mktemp("farm-up"), PYTHONPATH=str(plugins)) as up:
        yield up


@pytest.fixture
async def api(stack: FarmUp) -> AsyncIterator[httpx.AsyncClient]:
    async with contract.client(base_url=stack.api, timeout=30) as client:
        yield client


@pytest.fixture
async def gateway(stack: FarmUp) -> AsyncIterator[httpx.AsyncClient]:
    """The upload gateway, where a frontend sends file bytes (docs/assets.md)."""
    async with contract.client(contract.GATEWAY_PATHS, base_url=stack.uploads,
                               timeout=60) as client:
        yield client
