"""A running task's log followed as a frontend or `farm tasks log -f` follows it, over HTTP
on the session's farm: each line arrives within 2 s of being printed, the task list shows
the last line while the task runs, and the whole log reads the same afterwards."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.farm import submit, tasks_of, wait_job, wait_nodes
from tests.support.identity import register_studio

pytestmark = pytest.mark.cluster
TICKS = 8


async def test_a_running_tasks_log_is_followed_live(http, api, farm):
    studio = await register_studio(http, roles=("td",))
    headers = studio.td.headers
    await wait_nodes(http, headers, len(farm.nodes))
    job = await submit(http, headers, command=[
        "/bin/sh", "-c", f"for i in $(seq {TICKS}); do echo tick $i $(date +%s.%N); "
        "sleep 0.5; done"])
    task = None
    for _ in range(150):
        [task] = await tasks_of(http, headers, job["id"])
        if task["state"] == "running":
            break
        await asyncio.sleep(0.2)
    assert task["state"] == "running", task
    lags: list[float] = []
    last_lines: set[str] = set()
    followed = ""
    async with httpx.AsyncClient(base_url=api, timeout=60) as plain, plain.stream(
            "GET", f"/api/v1/tasks/{task['id']}/log", params={"follow": "true"},
            headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["x-log-attempt"] == "1"
        async for text in response.aiter_text():
            followed += text
            now = time.time()
            lags += [now - float(line.split()[2]) for line in text.splitlines()
                     if line.startswith("tick ")]
            if len(lags) >= TICKS // 2 and not last_lines:  # (a chunk may hold two lines)
                [mid] = await tasks_of(http, headers, job["id"])
                last_lines.add(mid["last_line"] or "")
    assert len(lags) == TICKS, followed
    print(f"\nlive log: lines arrived {max(lags):.2f} s at most after being printed")
    assert max(lags) < 2.0, lags
    assert any(line.startswith("tick ") for line in last_lines), last_lines
    assert (await wait_job(http, headers, job["id"]))["status"] == "completed"
    whole = (await http.get(f"/api/v1/tasks/{task['id']}/log", headers=headers)).text
    assert whole == followed
    url = (await http.get(f"/api/v1/tasks/{task['id']}/log/url", headers=headers)).json()
    assert url["attempt"] == 1 and url["url"].startswith("http")
