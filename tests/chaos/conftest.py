"""Faults injected into a running farm (docs/farm.md, "Faults"): each test starts a frame
job on the session's two farm nodes, breaks one part, and checks what users rely on.

Recovery times are printed at the end of the run, one line per fault.
"""

from __future__ import annotations

import pytest

from tests.support.chaos import JobUnderFault, Watcher
from tests.support.farm import wait_nodes
from tests.support.identity import register_studio

RECOVERY: dict[str, float] = {}


@pytest.fixture
def recovered():
    """`recovered(fault, seconds)` notes how long the farm took to work again."""
    def note(fault: str, seconds: float) -> None:
        RECOVERY[fault] = seconds
        print(f"{fault}: recovered in {seconds:.1f} s")
    return note


@pytest.fixture
async def under_fault(http, settings, farm, tmp_path) -> JobUnderFault:
    studio = await register_studio(http, roles=("td", "artist"))
    await wait_nodes(http, studio.td.headers, len(farm.nodes))
    watcher = Watcher(settings.upload_url, studio.td.access_token)
    return JobUnderFault(http, settings, studio, tmp_path / "runs.txt", watcher)


def pytest_terminal_summary(terminalreporter) -> None:
    if RECOVERY:
        terminalreporter.section("recovery after each fault")
        for fault, seconds in RECOVERY.items():
            terminalreporter.write_line(f"{fault:<48} {seconds:6.1f} s")
