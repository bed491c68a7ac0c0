"""Render nodes as an operator runs them: `farm join` against the running `farm up`, with the
address and token file its banner printed; Ctrl-C/SIGTERM leaves without losing work."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

from pipelines.embedded import free_port
from tests.support.farm import submit, tasks_of, wait_job, wait_nodes
from tests.support.system import BIN, farm_join, processes_with, user_env
from tests.system.test_first_run import register


def _join_once(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "farm"), "join", *args], env=user_env(),
                          capture_output=True, text=True, timeout=120)


async def test_a_node_that_cannot_join_says_why_in_one_line_and_exits(stack, tmp_path):
    closed = await asyncio.to_thread(_join_once, f"127.0.0.1:{free_port()}",
                                     "--token-file", stack.token_file)
    assert closed.returncode != 0
    assert closed.stdout.strip().startswith("farm join: cannot reach the head at 127.0.0.1:")
    assert len(closed.stdout.strip().splitlines()) == 1
    wrong = tmp_path / "wrong-token"
    wrong.write_text("0" * 64)
    refused = await asyncio.to_thread(_join_once, stack.cluster, "--token-file", str(wrong),
                                      "--name", "wrong-token-node")
    assert refused.returncode != 0
    assert refused.stdout.strip() == ("farm join: the head refused this node's auth token "
                                      "(check --token-file or RAY_AUTH_TOKEN)")
    assert processes_with("--node-name=wrong-token-node") == []
    nobody = await asyncio.to_thread(_join_once, stack.cluster)
    assert nobody.returncode != 0 and "no cluster token" in nobody.stdout


async def test_a_joined_node_takes_work_and_its_tasks_finish_elsewhere_when_it_leaves(
        api, stack, tmp_path):
    _, headers = await register(api, "joined", stack.mail_dir)
    node = farm_join(tmp_path, stack.cluster, "--token-file", stack.token_file,
                     "--slots", "2", "--tag", "blue")
    try:
        node.wait_for(r"Joined the farm at", timeout_s=120)
        nodes = await wait_nodes(api, headers, 2)
        [joined] = [n for n in nodes if n["name"] == "render-node-1"]
        assert joined["slots"] == 2 and joined["tags"] == ["blue"]
        tagged = await submit(api, headers, command=["true"],
                              requirements={"tags": ["blue"]})
        assert (await wait_job(api, headers, tagged["id"]))["status"] == "completed"
        [task] = await tasks_of(api, headers, tagged["id"])
        assert task["node_id"] == joined["node_id"]
        # One attempt each: if leaving cost an attempt, the moved tasks would end dead.
        job = await submit(api, headers, command=["sleep", "6.5"], frames="1-4",
                           max_attempts=1)
        await _until_running_on(api, headers, job["id"], joined["node_id"])
        left_at = time.monotonic()
        assert node.stop(signal.SIGTERM, timeout_s=90) == 0, node.output()[-3000:]
        print(f"SIGTERM -> node gone: {time.monotonic() - left_at:.1f} s")
        assert "left the farm" in node.output()
    finally:
        node.stop(signal.SIGTERM)
    assert processes_with("--node-name=render-node-1") == []
    done = await wait_job(api, headers, job["id"], timeout_s=180)
    assert done["status"] == "completed", done
    moved = [t for t in await tasks_of(api, headers, job["id"])
             if any(h["node_id"] == joined["node_id"] for h in t["history"])]
    assert moved, "no task ran on the joined node"
    for task in moved:
        assert task["node_id"] != joined["node_id"] and task["state"] == "succeeded"
        assert [h["failure_class"] for h in task["history"]][:1] == ["node_lost"]
    await wait_nodes(api, headers, 1)


async def _until_running_on(api, headers, job_id: str, node_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tasks = await tasks_of(api, headers, job_id)
        if any(t["state"] == "running" and t["node_id"] == node_id for t in tasks):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"nothing ran on the joined node: {tasks}")
