"""One request id from a click to a frame: the id of the request that submitted a job is on
the job's events, in the dispatcher's and the node agents' log lines about its tasks, and
in the first line of each task's log."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import ray

from tests.support.farm import tasks_of, wait_job, wait_nodes
from tests.support.identity import register_studio

pytestmark = pytest.mark.cluster


def ray_log_lines(needle: str) -> list[str]:
    """Lines of this cluster's worker logs (actors write theirs there) holding `needle`."""
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    return [line for path in logs.glob("worker-*") for line in
            path.read_text(errors="replace").splitlines() if needle in line]


async def test_the_submitting_request_id_follows_the_job_to_its_frames(http, farm):
    studio = await register_studio(http, roles=("td",))
    headers = studio.td.headers
    await wait_nodes(http, headers, len(farm.nodes))
    trace = f"trace-{uuid.uuid4().hex[:12]}"
    response = await http.post("/api/v1/jobs", headers=headers | {"X-Request-ID": trace},
                               json={"kind": "command", "frames": "1-2",
                                     "command": ["/bin/sh", "-c", "echo frame {frame}"]})
    assert response.status_code == 201 and response.headers["x-request-id"] == trace
    job = await wait_job(http, headers, response.json()["id"])
    assert job["status"] == "completed"
    events = (await http.get("/api/v1/events", params={"room": f"job:{job['id']}"},
                             headers=headers)).json()["items"]
    assert {e["type"] for e in events} >= {"job.submitted", "task.started", "job.completed"}
    assert {e["request_id"] for e in events} == {trace}
    for task in await tasks_of(http, headers, job["id"]):
        log = await http.get(f"/api/v1/tasks/{task['id']}/log", headers=headers)
        first = log.text.splitlines()[0]
        assert first.startswith(f"# task {task['id']} attempt 1 on node ")
        assert first.endswith(f"request {trace}")
    agent_lines = ray_log_lines(trace)
    assert any('"msg": "task started"' in line for line in agent_lines), agent_lines[:5]
    assert any('"msg": "task ended"' in line for line in agent_lines)
    assert any('"msg": "job completed"' in line and job["id"] in line  # the dispatcher's
               for line in agent_lines)
