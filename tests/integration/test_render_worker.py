"""The Blender renderer and the movie maker with real Blender (bpy) and FFmpeg, no farm."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipelines.render.base import FrameReport, RenderFailed, RenderRequest
from pipelines.render.blender import BlenderRenderer
from pipelines.render.movie import MovieMaker
from pipelines.render.sample_scene import write_in_subprocess
from tests.support.render import probe


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "sample.blend"
    done = write_in_subprocess(str(path), frames=24)
    assert done.returncode == 0, done.stderr[-2000:]
    return path


async def render(request: RenderRequest) -> tuple[list[FrameReport], list[str], dict]:
    seen: list[FrameReport] = []
    log: list[str] = []

    async def on_frame(report: FrameReport) -> None:
        assert report.path.is_file()  # handed on as soon as it is written
        seen.append(report)

    result = await BlenderRenderer().render(request, on_frame, log)
    assert [f.frame for f in result.frames] == [f.frame for f in seen]
    return seen, log, result.scene


async def test_frames_render_with_per_frame_time_and_memory_then_become_a_movie(scene,
                                                                              tmp_path):
    frames, log, info = await render(RenderRequest(
        frames=[1, 12, 24], out=tmp_path / "out", timeout_s=120, scene=scene, samples=1,
        percent=50))
    assert [f.frame for f in frames] == [1, 12, 24]
    assert all(f.seconds > 0 and f.peak_rss and f.peak_rss > 50 * 2**20 for f in frames)
    assert info["fps"] == 24.0 and (info["width"], info["height"]) == (160, 90)
    assert info["device"] == "CPU" and "FARM_FRAME" in log[0]
    movie = await MovieMaker().assemble([f.path for f in frames], tmp_path / "movie", 24.0)
    [video] = probe(movie.movie)["streams"]
    assert int(video["nb_read_packets"]) == 3 and video["avg_frame_rate"] == "24/1"
    assert movie.poster and movie.poster.stat().st_size > 0
    assert movie.filmstrip and movie.filmstrip.stat().st_size > 0


async def test_a_chunk_past_its_time_limit_is_killed_as_a_timeout(scene, tmp_path):
    started = time.monotonic()
    with pytest.raises(RenderFailed) as caught:
        await render(RenderRequest(frames=[1, 2, 3], out=tmp_path / "out", timeout_s=1.5,
                                   scene=scene, samples=4096, percent=200))
    assert caught.value.failure_class == "timeout"
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("content, words", [
    (b"BLENDER-v405REND" + os.urandom(4096), "cannot open the scene"),
    (b"not a blend file at all", "not a Blender file"),
])
async def test_a_corrupt_scene_is_bad_input(tmp_path, content, words):
    broken = tmp_path / "broken.blend"
    broken.write_bytes(content)
    with pytest.raises(RenderFailed) as caught:
        await render(RenderRequest(frames=[1], out=tmp_path / "out", timeout_s=60,
                                   scene=broken))
    assert caught.value.failure_class == "bad_input" and words in caught.value.message
    assert str(tmp_path) not in caught.value.message  # no node paths in messages


async def test_the_command_renderer_finds_each_frames_image(tmp_path):
    from pipelines.render.command import CommandRenderer

    seen: list[int] = []

    async def on_frame(report: FrameReport) -> None:
        seen.append(report.frame)

    writes = ["/bin/sh", "-c", "printf x > {output}/beauty.{frame:04d}.png"]
    log: list[str] = []
    result = await CommandRenderer().render(RenderRequest(
        frames=[7, 8], out=tmp_path / "out", timeout_s=30, argv=writes), on_frame, log)
    assert seen == [7, 8] and [f.path.name for f in result.frames] == [
        "beauty.0007.png", "beauty.0008.png"]
    forgets = ["/bin/sh", "-c", "test {frame} = 9 || printf x > {output}/{frame}.png"]
    with pytest.raises(RenderFailed) as caught:
        await CommandRenderer().render(RenderRequest(
            frames=[9], out=tmp_path / "out2", timeout_s=30, argv=forgets), on_frame, log)
    assert caught.value.failure_class == "crash" and "frames [9]" in caught.value.message
    with pytest.raises(RenderFailed) as caught:
        await CommandRenderer().render(RenderRequest(
            frames=[1], out=tmp_path / "out3", timeout_s=30, argv=["/bin/sh", "-c", "exit 3"]),
            on_frame, log)
    assert caught.value.exit_code == 3 and caught.value.failure_class == "crash"
