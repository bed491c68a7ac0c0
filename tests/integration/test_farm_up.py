"""`farm up` (what `make run` ends in): ready on embedded services; SIGTERM stops it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pipelines.embedded import free_port
from tests.support.services import wait_ready


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_farm_up_serves_ready_and_stops_everything_on_sigterm(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_", "RAY_ADDRESS"))}
    env |= {"FARM_DATA_DIR": str(tmp_path / "data"), "FARM_API_PORT": str(port),
            "FARM_RAY_DASHBOARD_PORT": str(free_port()), "FARM_API_REPLICAS": "1",
            "FARM_UPLOAD_PORT": str(free_port())}
    log = open(tmp_path / "farm-up.log", "w")  # noqa: SIM115 - the child writes to it
    process = subprocess.Popen([sys.executable, "-m", "serve.cli", "up"], env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}", timeout_s=120)
        assert all(c["status"] == "ok" for c in ready.json()["checks"].values())
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200
        started = _descendants(process.pid)
        assert len(started) >= 4  # database, storage, and Ray's processes
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.5)
        leftovers = [pid for pid in started if _alive(pid)]
        assert leftovers == [], (tmp_path / "farm-up.log").read_text()[-3000:]
        output = (tmp_path / "farm-up.log").read_text()
        assert f"http://127.0.0.1:{port}/docs" in output and "Ray dashboard" in output
        assert output.index("stopping…") < output.index("Studio Farm stopped.")
        upload_port = env["FARM_UPLOAD_PORT"]
        assert f"Live events:    ws://127.0.0.1:{upload_port}/api/v1/ws" in output
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
