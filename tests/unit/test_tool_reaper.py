"""A process's tool groups die with it, however it dies (pipelines/media/reaper.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.system import appears, gone, processes_with

ROOT = Path(__file__).resolve().parents[2]
OWNER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from pipelines.media import reaper
from pipelines.media.runner import run_tool
if {guarded}:
    reaper.guard_tool_groups()
marker = "{whole}" + ".{fraction}"  # so that only the tools' command lines hold it
asyncio.run(run_tool(["/bin/sh", "-c", f"sleep {{marker}} & sleep {{marker}}; wait"],
                     timeout_s=600, memory_bytes=None, cpu_seconds=None))
"""


@pytest.mark.parametrize(("guarded", "marker"), [(True, "71.125"), (False, "71.375")])
async def test_a_killed_owner_leaves_no_tool_running_only_when_guarded(guarded, marker):
    whole, fraction = marker.split(".")
    owner = subprocess.Popen([sys.executable, "-c", OWNER.format(  # noqa: ASYNC220
        root=str(ROOT), guarded=guarded, whole=whole, fraction=fraction)])
    try:
        assert await appears(f"sleep {marker}", timeout_s=20)
        owner.send_signal(signal.SIGKILL)  # no cleanup of its own can run
        owner.wait()
        # The tool, its child and grandchild (the whole group) go with a guarded owner.
        assert await gone(f"sleep {marker}", timeout_s=5) is guarded
    finally:
        for pid in processes_with(f"sleep {marker}"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
