"""A real upload becomes a preview job on the farm: probe, poster, proxy, filmstrip."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import httpx
import pytest

from tests.support.assets import create_asset, upload_simple
from tests.support.farm import wait_job, wait_nodes
from tests.support.identity import register_studio
from tests.support.media import make_mp4

pytestmark = pytest.mark.cluster


async def _preview_job(http, headers, asset_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = (await http.get("/api/v1/jobs", params={"kind": "preview"},
                               headers=headers)).json()["items"]
        mine = [j for j in jobs if (j.get("target") or {}).get("asset_id") == asset_id]
        if mine:
            return mine[0]
        await asyncio.sleep(0.3)
    raise AssertionError("no preview job was made for the new version")


def _probe(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams",
                          "-show_format", str(path)], capture_output=True, check=True, timeout=30)
    return json.loads(out.stdout)


async def test_an_uploaded_video_gets_probe_poster_proxy_and_filmstrip(http, farm, tmp_path):
    studio = await register_studio(http, roles=("td",))
    headers = studio.admin.headers
    await wait_nodes(http, headers, len(farm.nodes))
    clip = make_mp4(tmp_path / "odd.mp4", seconds=2, size="321x181", pix_fmt="yuv444p")
    asset = await create_asset(http, headers, kind="plate")
    assert (await upload_simple(http, headers, asset["id"], clip.read_bytes())).status_code == 201
    job = await _preview_job(http, headers, asset["id"])
    done = await wait_job(http, headers, job["id"])
    assert done["status"] == "completed", done
    versions = (await http.get(f"/api/v1/assets/{asset['id']}/versions",
                               headers=headers)).json()["items"]
    previews = versions[0]["previews"]
    assert previews["probe"]["width"] == 321 and previews["probe"]["duration_s"] > 1.5
    assert {"poster", "proxy", "filmstrip"} <= set(previews["keys"])
    links = await http.get(f"/api/v1/assets/{asset['id']}/versions/1/previews", headers=headers)
    assert links.status_code == 200, links.text
    async with httpx.AsyncClient() as storage:
        for name in ("poster", "proxy", "filmstrip"):
            response = await storage.get(links.json()["urls"][name])
            assert response.status_code == 200
            (tmp_path / name).write_bytes(response.content)
    video = next(s for s in _probe(tmp_path / "proxy")["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert video["width"] % 2 == 0 and video["height"] % 2 == 0 and video["width"] <= 1920
    assert _probe(tmp_path / "poster")["streams"][0]["codec_name"] == "mjpeg"
    events = (await http.get("/api/v1/events", params={"after": 0}, headers=headers))
    if events.status_code == 200:  # the replay route of the real-time work
        types = [e["type"] for e in events.json()["items"]]
        assert "asset.preview_ready" in types


async def test_broken_media_ends_in_a_failed_job_with_the_reason(http, farm, mp4_bytes, db):
    studio = await register_studio(http, roles=())
    headers = studio.admin.headers
    asset = await create_asset(http, headers)
    # A real MP4 head with its body cut away: accepted by content, unplayable.
    broken = mp4_bytes[:2000]
    assert (await upload_simple(http, headers, asset["id"], broken)).status_code == 201
    job = await _preview_job(http, headers, asset["id"])
    done = await wait_job(http, headers, job["id"])
    assert done["status"] == "failed"
    assert "bad_input" in done["reason"]
    tasks = (await http.get(f"/api/v1/jobs/{job['id']}/tasks", headers=headers)).json()["items"]
    assert len(tasks[0]["history"]) == 1  # bad input is not retried
