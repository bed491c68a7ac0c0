"""Stopping `farm up` while work runs, then starting it again on the same data: the running
task's processes end with it (they run in sessions of their own and would outlive the
node), and the next start runs the task again without charging an attempt."""

from __future__ import annotations

import signal

from tests.support import contract
from tests.support.farm import submit, tasks_of, wait_job
from tests.support.system import appears, farm_up, gone
from tests.system.test_first_run import PASSWORD, register


async def test_a_task_running_when_farm_up_stops_is_stopped_and_runs_after_a_restart(tmp_path):
    first = farm_up(tmp_path)
    try:
        async with contract.client(base_url=first.api, timeout=30) as api:
            _, headers = await register(api, "restart", first.mail_dir)
            job = await submit(api, headers, max_attempts=1, command=[
                "/bin/sh", "-c", "sleep 3.75 && exec sleep 389.5 || true"])
            assert await appears("sleep 389.5", timeout_s=60)
    finally:
        assert first.launched.stop(signal.SIGINT) == 0, first.launched.output()[-3000:]
    assert await gone("sleep 389.5", timeout_s=5), "a task's process outlived farm up"
    again = first.start_again(tmp_path / "farm-up-2.log")
    try:
        again.wait_for(r"Ctrl-C stops everything", timeout_s=240)
        async with contract.client(base_url=first.api, timeout=30) as api:
            login = await api.post("/api/v1/auth/login", json={
                "studio": "restart", "email": "ada@restart.example", "password": PASSWORD})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            assert await appears("sleep 389.5", timeout_s=60)  # requeued and running again
            [task] = await tasks_of(api, headers, job["id"])
            assert task["history"][0]["failure_class"] == "node_lost"
            await api.post(f"/api/v1/jobs/{job['id']}/cancel", headers=headers)
            assert (await wait_job(api, headers, job["id"]))["status"] == "cancelled"
    finally:
        assert again.stop(signal.SIGINT) == 0, again.output()[-3000:]
    assert await gone("sleep 389.5", timeout_s=5)

