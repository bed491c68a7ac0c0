"""Layered jobs and jobs after jobs on the real multi-node farm: every dependency holds,
checked from the tasks' own start and finish times, and frame-by-frame work overlaps."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.support.farm import tasks_of, wait_job, wait_nodes
from tests.support.identity import register_studio

pytestmark = pytest.mark.cluster

# Frame f "renders" for 0.25 * f seconds: the last chunk ends well after the first.
RENDER = ["python3", "-c", "import sys, time\n"
          "first, last, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]\n"
          "for f in range(first, last + 1):\n"
          "    time.sleep(0.25 * f)\n"
          "    open('%s/render_%d.txt' % (out, f), 'w').write(str(f))\n",
          "{first}", "{last}", "{output}"]
COMP = ["/bin/sh", "-c", "sleep 0.1; echo {frame} > {output}/comp_{frame}.txt"]
ENCODE = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
          "testsrc=size=160x90:rate=24:duration=0.5", "-pix_fmt", "yuv420p", "{output}/daily.mp4"]


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


@pytest.fixture
async def studio(http, farm):
    ctx = await register_studio(http, roles=("td",))
    await wait_nodes(http, ctx.td.headers, len(farm.nodes))
    return ctx


async def test_render_comp_encode_and_a_job_after_it(http, studio):
    response = await http.post("/api/v1/jobs", headers=studio.td.headers, json={
        "kind": "layered", "name": "sh010", "layers": [
            {"name": "render", "command": RENDER, "frames": "1-8", "chunk_size": 2},
            {"name": "comp", "command": COMP, "frames": "1-8",
             "depends_on": [{"layer": "render", "per_frame": True}]},
            {"name": "encode", "command": ENCODE, "depends_on": ["comp"]}]})
    assert response.status_code == 201, response.text
    first = response.json()
    after = await http.post("/api/v1/jobs", headers=studio.td.headers, json={
        "kind": "command", "name": "deliver", "command": ["true"], "after": [first["id"]]})
    assert after.status_code == 201 and after.json()["status"] == "waiting", after.text

    done = await wait_job(http, studio.td.headers, first["id"], timeout_s=180)
    assert done["status"] == "completed", done
    second = await wait_job(http, studio.td.headers, after.json()["id"], timeout_s=60)
    assert second["status"] == "completed" and second["waiting_on"] == [], second

    tasks = await tasks_of(http, studio.td.headers, first["id"])
    render = [t for t in tasks if t["layer"] == "render"]
    comp = [t for t in tasks if t["layer"] == "comp"]
    (encode,) = [t for t in tasks if t["layer"] == "encode"]
    holder = {f: t for t in render for f in t["frames"]}
    for task in comp:  # frame by frame: after the render chunk holding its frame, only
        assert task["depends_on"] == [holder[task["frames"][0]]["id"]]
        assert at(task["started_at"]) >= at(holder[task["frames"][0]]["finished_at"])
    assert at(encode["started_at"]) >= max(at(t["finished_at"]) for t in comp)
    # The point of frame by frame: comp began while the render layer was still running.
    assert min(at(t["started_at"]) for t in comp) < max(at(t["finished_at"]) for t in render)
    assert encode["outputs"] and encode["outputs"][0].endswith("/daily.mp4")
    (deliver,) = await tasks_of(http, studio.td.headers, second["id"])
    assert at(deliver["started_at"]) >= at(done["finished_at"])


async def test_an_encode_job_makes_a_deliverable_of_a_video_version(http, studio, settings,
                                                                     mp4_bytes, tmp_path):
    from pipelines.storage import ObjectStore, storage_config
    from tests.support.assets import create_asset, upload_simple
    from tests.support.render import probe

    asset = await create_asset(http, studio.td.headers)
    uploaded = await upload_simple(http, studio.td.headers, asset["id"], mp4_bytes)
    assert uploaded.status_code == 201, uploaded.text
    response = await http.post("/api/v1/job-types/encode/jobs", headers=studio.td.headers,
                               json={"name": "deliverable", "settings": {
                                   "asset_id": asset["id"], "version": 1, "codec": "h264",
                                   "crf": 28, "max_height": 90}})
    assert response.status_code == 201, response.text
    done = await wait_job(http, studio.td.headers, response.json()["id"], timeout_s=120)
    assert done["status"] == "completed", done
    (task,) = await tasks_of(http, studio.td.headers, done["id"])
    (key,) = task["outputs"]
    assert key.endswith("/outputs/clip.mp4")
    movie = tmp_path / "clip.mp4"
    await ObjectStore(storage_config(settings)).download(key, str(movie))
    (video,) = [s for s in probe(movie)["streams"] if s["codec_type"] == "video"]
    assert (video["codec_name"], video["height"], video["width"]) == ("h264", 90, 160)
