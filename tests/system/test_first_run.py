"""The README's "Try it in two minutes", step by step, on a `farm up` started as a user does:
only HTTP and the socket, as a frontend drives them. No test cluster, no added farm node:
the machine `farm up` runs on is the farm."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.support.farm import submit, tasks_of, wait_job, wait_nodes
from tests.support.live import LiveClient
from tests.support.mail import Mailbox, verify_email
from tests.support.media import make_mp4
from tests.support.render import probe
from tests.support.system import BIN, appears, gone, user_env

PASSWORD = "correct horse battery"


async def register(api: httpx.AsyncClient, slug: str, mail_dir: Path) -> tuple[str, dict]:
    """Sign up, then confirm the email with the code `farm up`'s mail server kept in the
    folder its banner names ("Mail:"), as a new user does."""
    email = f"ada@{slug}.example"
    response = await api.post("/api/v1/auth/register", json={
        "studio_name": f"Studio {slug}", "studio_slug": slug, "email": email,
        "name": "Ada", "password": PASSWORD})
    assert response.status_code == 201, response.text
    assert response.json()["user"]["email_verified"] is False
    token = response.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    await verify_email(api, Mailbox(mail_dir), email, headers)
    return token, headers


async def new_asset(api: httpx.AsyncClient, headers: dict, name: str, kind: str) -> dict:
    response = await api.post("/api/v1/assets", json={"name": name, "kind": kind},
                              headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def upload(gateway: httpx.AsyncClient, headers: dict, asset_id: str, name: str,
                 data: bytes, content_type: str) -> None:
    response = await gateway.post(f"/api/v1/assets/{asset_id}/file", headers=headers,
                                  files={"file": (name, data, content_type)})
    assert response.status_code == 201, response.text


@contextlib.asynccontextmanager
async def socket(base: str, token: str) -> AsyncIterator[LiveClient]:
    live = await LiveClient.open(base, token, origin=None)  # a script, not a browser
    try:
        yield live
    finally:
        await live.close()


async def download(url: str, path) -> None:
    async with httpx.AsyncClient(timeout=60) as storage:
        response = await storage.get(url)
        assert response.status_code == 200, url
        path.write_bytes(response.content)


async def test_the_machine_farm_up_runs_on_is_a_farm_node(api, stack):
    _, headers = await register(api, "nodes", stack.mail_dir)
    [node] = await wait_nodes(api, headers, 1)
    assert node["slots"] >= 1
    ready = (await api.get("/ready")).json()
    assert ready["checks"]["dispatcher"]["status"] == "ok", ready


async def test_an_uploaded_clip_gets_its_preview(api, gateway, stack, tmp_path):
    token, headers = await register(api, "clip", stack.mail_dir)
    clip = make_mp4(tmp_path / "plate.mp4", seconds=2)
    asset = await new_asset(api, headers, "sh010 plate", "plate")
    async with socket(stack.uploads, token) as live:
        started = time.monotonic()
        await upload(gateway, headers, asset["id"], "plate.mp4", clip.read_bytes(), "video/mp4")
        ready = await live.next(lambda f: f.get("type") == "asset.preview_ready", within=120)
        print(f"upload answered -> preview ready: {time.monotonic() - started:.1f} s")
    assert ready["data"]["asset_id"] == asset["id"]
    links = await api.get(f"/api/v1/assets/{asset['id']}/versions/1/previews", headers=headers)
    assert links.status_code == 200, links.text
    await download(links.json()["urls"]["poster"], tmp_path / "poster.jpg")
    await download(links.json()["urls"]["proxy"], tmp_path / "proxy.mp4")
    assert probe(tmp_path / "poster.jpg")["streams"][0]["codec_name"] == "mjpeg"
    [video] = [s for s in probe(tmp_path / "proxy.mp4")["streams"] if s["codec_type"] == "video"]
    assert video["codec_name"] == "h264" and int(video["nb_read_packets"]) == 48


async def test_the_sample_scene_renders_into_a_movie_with_live_progress(api, gateway, stack,
                                                                        tmp_path):
    token, headers = await register(api, "render", stack.mail_dir)
    scene_file = tmp_path / "shot.blend"
    made = await asyncio.to_thread(
        subprocess.run, [str(BIN / "farm"), "sample-scene", str(scene_file), "--frames", "12"],
        env=user_env(), capture_output=True, text=True, timeout=180)
    assert made.returncode == 0, made.stdout + made.stderr
    scene = await new_asset(api, headers, "sh010 layout", "environment")
    await upload(gateway, headers, scene["id"], "shot.blend", scene_file.read_bytes(),
                 "application/x-blender")
    target = await new_asset(api, headers, "sh010 render", "render")
    async with socket(stack.uploads, token) as live:
        job = await submit(api, headers, kind="render", name="sh010", frames="1-12",
                           chunk_size=2, render={"scene": {"asset_id": scene["id"], "version": 1},
                                                 "target_asset_id": target["id"], "samples": 2})
        mine = lambda f: f.get("room") == f"job:{job['id']}"  # noqa: E731
        preview = await live.next(lambda f: mine(f) and f["type"] == "job.progress"
                                  and "preview" in f["data"], within=240)
        done = await live.next(lambda f: mine(f) and f["type"] in ("job.completed",
                                                                    "job.failed"), within=240)
    assert done["type"] == "job.completed", done
    assert preview["seq"] < done["seq"]
    links = await api.get(f"/api/v1/assets/{target['id']}/versions/1/previews", headers=headers)
    await download(links.json()["urls"]["proxy"], tmp_path / "movie.mp4")
    [video] = probe(tmp_path / "movie.mp4")["streams"]
    assert video["codec_name"] == "h264" and int(video["nb_read_packets"]) == 12


async def test_cancel_stops_a_running_command_and_publishes_nothing(api, stack):
    _, headers = await register(api, "cancel", stack.mail_dir)
    marker = "417.25"  # a sleep no other process on this machine runs
    job = await submit(api, headers, name="long", command=[
        "/bin/sh", "-c", f"echo partial > {{output}}/result.txt; exec sleep {marker}"])
    await _until_running(api, headers, job["id"])
    # `running` is reported as the task starts: its process may be a moment behind.
    assert await appears(f"sleep {marker}", timeout_s=15), "the command never started"
    cancelled_at = time.monotonic()
    response = await api.post(f"/api/v1/jobs/{job['id']}/cancel", headers=headers)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert await gone(f"sleep {marker}", timeout_s=15)
    print(f"cancel -> no process left: {time.monotonic() - cancelled_at:.2f} s")
    await asyncio.sleep(3)  # room for a late report to (wrongly) publish something
    [task] = await tasks_of(api, headers, job["id"])
    assert task["state"] == "cancelled" and task["outputs"] == []
    final = await wait_job(api, headers, job["id"])
    assert final["status"] == "cancelled"
    events = (await api.get("/api/v1/events", params={"room": f"job:{job['id']}"},
                            headers=headers)).json()["items"]
    assert "job.cancelled" in [e["type"] for e in events]
    assert "job.completed" not in [e["type"] for e in events]


async def _until_running(api, headers, job_id: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(t["state"] == "running" for t in await tasks_of(api, headers, job_id)):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the task never started")


async def test_a_job_asking_more_slots_than_the_machine_has_runs_one_task_at_a_time(api, stack):
    """A TD's `slots: 64` on a laptop: each task takes the whole node and runs alone, and
    the job's counts, kept as tasks move, end where the tasks are."""
    _, headers = await register(api, "big", stack.mail_dir)
    [node] = await wait_nodes(api, headers, 1)
    assert node["slots"] * 5 < 64  # more than a node is leased, at the most ahead allowed
    job = await submit(api, headers, name="big", command=["true"], frames="1-3",
                       requirements={"slots": 64})
    final = await wait_job(api, headers, job["id"], timeout_s=60)
    assert (final["status"], final["counts"]) == ("completed", {"succeeded": 3})
    assert [t["state"] for t in await tasks_of(api, headers, job["id"])] == ["succeeded"] * 3
