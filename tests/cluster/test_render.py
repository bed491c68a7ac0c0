"""Render jobs on a real multi-node Ray cluster with real Blender (bpy) renders.

The sample scene (`farm sample-scene`) at 320x180 with 2 samples: a frame takes about a
second on this small machine. Render tasks ask for 2 slots, so each farm node renders one
chunk at a time with 2 threads, and assembly or a progressive preview (1 slot) waits for
the next free slot, where it goes first (it has a lower index than the chunks left).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from pipelines.render.sample_scene import write_in_subprocess
from pipelines.storage import ObjectStore, storage_config
from tests.support.farm import tasks_of, wait_job, wait_nodes
from tests.support.identity import register_studio
from tests.support.render import probe, render_body, scene_and_target

pytestmark = pytest.mark.cluster
SLOTS = {"requirements": {"slots": 2}}


@pytest.fixture(scope="session")
def blend(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("scene") / "sample.blend"
    done = write_in_subprocess(str(path), frames=48)
    assert done.returncode == 0, done.stderr[-2000:]
    return path.read_bytes()


@pytest.fixture
async def studio(http, farm):
    ctx = await register_studio(http, roles=("td", "artist"))
    await wait_nodes(http, ctx.td.headers, len(farm.nodes))
    return ctx


async def submit(http, headers, body: dict) -> dict:
    response = await http.post("/api/v1/jobs", json=body | SLOTS, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def frame_keys(settings, studio_id: str, job_id: str) -> list[str]:
    store = ObjectStore(storage_config(settings))
    prefix = f"studios/{studio_id}/jobs/{job_id}/frames/"
    return sorted(o.object_name.rsplit("/", 1)[1] for o in store.client.list_objects(
        settings.s3_bucket, prefix, recursive=True) if o.object_name.endswith(".png"))


async def job_events(db, studio_id: str, job_id: str) -> list[dict]:
    return await db["events"].find({"studio_id": studio_id, "room": f"job:{job_id}"}).sort(
        "seq", 1).to_list()


async def fetch(url: str, path: Path) -> Path:
    async with httpx.AsyncClient(timeout=30) as storage:
        response = await storage.get(url)
    assert response.status_code == 200, response.text
    await asyncio.to_thread(path.write_bytes, response.content)
    return path


def check_frames_and_totals(done: dict, renders: list[dict]) -> None:
    assert len(renders) == 12 and len({t["node_id"] for t in renders}) == 2
    assert sorted(f for t in renders for f in t["frames"]) == list(range(1, 25))
    # The scene was downloaded at most once per node, never once per chunk.
    assert 1 <= sum(t["metrics"]["scene_downloaded"] for t in renders) <= 2
    frames = [f for t in renders for f in t["metrics"]["frames"]]
    assert sorted(f["frame"] for f in frames) == list(range(1, 25))
    assert all(f["seconds"] > 0 and f["peak_rss"] > 50 * 2**20 for f in frames)
    totals = done["render"]
    assert totals["frames_done"] == 24 and totals["peak_rss_max"] > 50 * 2**20
    assert totals["frame_seconds_total"] == pytest.approx(sum(f["seconds"] for f in frames),
                                                          abs=0.01)


async def check_published_movie(http, headers, target_id: str, tmp_path: Path) -> None:
    asset = (await http.get(f"/api/v1/assets/{target_id}", headers=headers)).json()
    assert asset["status"] == "in_review" and asset["current_version"] == 1
    links = (await http.get(f"/api/v1/assets/{target_id}/versions/1/previews",
                            headers=headers)).json()
    assert set(links["urls"]) == {"proxy", "poster", "filmstrip"}
    [video] = probe(await fetch(links["urls"]["proxy"], tmp_path / "movie.mp4"))["streams"]
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert int(video["nb_read_packets"]) == 24 and video["avg_frame_rate"] == "24/1"
    assert (video["width"], video["height"]) == (320, 180)


async def check_preview_came_first(db, studio_id: str, job_id: str, target_id: str,
                                   renders: list[dict]) -> None:
    events = await job_events(db, studio_id, job_id)
    previews = [e for e in events if e["type"] == "job.progress" and "preview" in e["data"]]
    assert previews, [e["type"] for e in events]
    first = previews[0]
    assert first["data"]["preview"]["frames"] < 24 and first["data"]["preview"]["url"]
    # The progressive preview was out before the last render chunk finished...
    last_render_end = max(datetime.fromisoformat(t["finished_at"]) for t in renders)
    assert first["at_s"] < last_render_end.timestamp()
    # ...and events came in this order: preview, the new version, the job's completion.
    asset_events = {e["type"]: e["seq"] for e in await db["events"].find(
        {"studio_id": studio_id, "room": f"asset:{target_id}"}).to_list()}
    completed = next(e["seq"] for e in events if e["type"] == "job.completed")
    assert first["seq"] < asset_events["asset.version_created"] < completed
    assert asset_events["asset.version_created"] < asset_events["asset.preview_ready"]


async def test_a_scene_renders_on_two_nodes_into_a_movie_in_review(http, studio, blend, db,
                                                                   tmp_path):
    headers = studio.artist.headers
    setup = await scene_and_target(http, headers, blend)
    job = await submit(http, headers, render_body(setup, "1-24", chunk_size=2))
    done = await wait_job(http, headers, job["id"], timeout_s=280)
    assert done["status"] == "completed", done
    renders = [t for t in await tasks_of(http, headers, job["id"]) if t["kind"] == "render"]
    check_frames_and_totals(done, renders)
    assert done["render"]["published"] == {"asset_id": setup.target["id"], "version": 1}
    await check_published_movie(http, headers, setup.target["id"], tmp_path)
    await check_preview_came_first(db, studio.studio_id, job["id"], setup.target["id"],
                                   renders)
    links = (await http.get(f"/api/v1/jobs/{job['id']}/preview", headers=headers)).json()
    assert links["movie"]["version"] == 1 and links["progressive"]["url"]
    small = probe(await fetch(links["progressive"]["url"], tmp_path / "preview.mp4"))
    assert int(small["streams"][0]["nb_read_packets"]) == 24  # the whole timeline, held


async def test_a_node_removed_mid_render_still_gives_every_frame_once(http, studio, blend,
                                                                      farm, settings,
                                                                      tmp_path):
    headers = studio.artist.headers
    extra = farm.add()
    await wait_nodes(http, studio.td.headers, len(farm.nodes))
    setup = await scene_and_target(http, headers, blend)
    job = await submit(http, headers, render_body(setup, "1-18", chunk_size=1) | {
        "max_attempts": 1})
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        tasks = await tasks_of(http, headers, job["id"])
        if any(t["node_id"] == extra.node_id and t["state"] == "running" and t["kind"] ==
               "render" for t in tasks):
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail("no chunk ever rendered on the extra node")
    farm.remove(extra)
    done = await wait_job(http, headers, job["id"], timeout_s=280)
    assert done["status"] == "completed", done  # max_attempts=1: the loss cost no attempt
    tasks = await tasks_of(http, headers, job["id"])
    lost = [h for t in tasks for h in t["history"] if h["failure_class"] == "node_lost"]
    assert lost and all(h["node_id"] == extra.node_id for h in lost)
    assert frame_keys(settings, studio.studio_id, job["id"]) == [
        f"{f:05d}.png" for f in range(1, 19)]
    links = (await http.get(f"/api/v1/jobs/{job['id']}/preview", headers=headers)).json()
    movie = probe(await fetch(links["movie"]["url"], tmp_path / "movie.mp4"))
    assert int(movie["streams"][0]["nb_read_packets"]) == 18


async def test_a_corrupt_scene_fails_the_job_as_bad_input_after_one_attempt(http, studio,
                                                                           blend):
    headers = studio.artist.headers
    corrupt = blend[:16] + bytes(range(256)) * 64  # a Blender header, then no Blender file
    setup = await scene_and_target(http, headers, corrupt)
    job = await submit(http, headers, render_body(setup, "1-2", chunk_size=2))
    done = await wait_job(http, headers, job["id"], timeout_s=120)
    assert done["status"] == "failed", done
    assert "bad_input" in done["reason"] and "cannot open the scene" in done["reason"]
    [render] = [t for t in await tasks_of(http, headers, job["id"]) if t["kind"] == "render"]
    # Tried once: a bad input is not retried. A node that an earlier test removed may have
    # taken the first lease before the dispatcher saw it gone; that attempt never ran and is
    # recorded as the node's loss, not as a try of the scene.
    tried = [h["failure_class"] for h in render["history"] if h["failure_class"] != "node_lost"]
    assert render["state"] == "dead" and tried == ["bad_input"], render["history"]
    asset = (await http.get(f"/api/v1/assets/{setup.target['id']}", headers=headers)).json()
    assert asset["version_count"] == 0
