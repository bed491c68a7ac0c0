"""A producer's figures, on data this test makes the way the studio makes it: jobs run on
the session's farm (one that fails), an upload, a review decision; then the analytics API."""

from __future__ import annotations

import time

import pytest

from tests.support.assets import create_asset, upload_simple
from tests.support.farm import submit, wait_job, wait_nodes
from tests.support.identity import register_studio

pytestmark = pytest.mark.cluster


async def test_a_producer_reads_the_studios_figures(http, farm, mp4_bytes):
    studio = await register_studio(http, roles=("td", "producer", "artist"))
    td, producer = studio.td.headers, studio.producer.headers
    await wait_nodes(http, td, len(farm.nodes))
    ok = await submit(http, td, command=["true"], frames="1-4", chunk_size=2)
    bad = await submit(http, td, command=["/bin/sh", "-c", "exit 3"], max_attempts=1)
    assert (await wait_job(http, td, ok["id"]))["status"] == "completed"
    assert (await wait_job(http, td, bad["id"]))["status"] == "failed"
    asset = await create_asset(http, studio.artist.headers)
    uploaded = await upload_simple(http, studio.artist.headers, asset["id"], mp4_bytes)
    assert uploaded.status_code == 201, uploaded.text
    decided = await http.post(f"/api/v1/assets/{asset['id']}/decisions", headers=producer,
                              json={"decision": "approve", "note": "ok"})
    assert decided.status_code == 201, decided.text

    async def get(part: str, **params) -> dict:
        response = await http.get(f"/api/v1/analytics/{part}", params=params, headers=producer)
        assert response.status_code == 200, response.text
        return response.json()

    by_kind = {r["key"]: r for r in (await get("usage", group="job_kind"))["items"]}
    assert (by_kind["command"]["tasks"], by_kind["command"]["frames"]) == (2, 4)
    assert by_kind["command"]["core_hours"] >= 0 and by_kind["command"]["render_hours"] >= 0
    [today] = (await get("usage", group="day"))["items"]
    assert today["key"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert today["jobs_submitted"] >= 2 and today["tasks"] >= 2
    by_submitter = {r["key"]: r["tasks"] for r in (await get("usage", group="submitter"))["items"]}
    assert by_submitter[studio.td.user_id] == 2
    crash = {r["key"]: r for r in (await get("failures", group="class"))["items"]}["crash"]
    assert crash["failed"] == 1 and 0 < crash["failure_rate"] < 1
    nodes = (await get("nodes", days=1))["items"]
    listed = {n["node_id"] for n in nodes}
    assert {n["node_id"] for n in nodes if n["attempts"]} and listed
    storage = await get("storage")
    assert storage["used_bytes"] == storage["version_bytes"] == len(mp4_bytes)
    review = await get("review")
    assert (review["decisions"], review["versions_decided"]) == (1, 1)
    assert review["turnaround_hours"]["median"] >= 0
    refused = await http.get("/api/v1/analytics/usage", headers=studio.artist.headers)
    assert refused.status_code == 403
