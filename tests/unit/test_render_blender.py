"""The Blender renderer without Blender: argument lists, the worker's lines, failure classes."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pipelines.media.runner import ToolResult
from pipelines.render.base import LineSplitter, RenderFailed, RenderRequest, parse_line
from pipelines.render.blender import WORKER, BlenderRenderer, _FrameStream, check_scene, classify
from pipelines.render.command import CommandRenderer, frame_of


def request(tmp_path: Path, **changes) -> RenderRequest:
    values = {"frames": [3, 4], "out": tmp_path / "out", "timeout_s": 60,
              "scene": tmp_path / "shot.blend", "samples": 8, "percent": 50,
              "image_format": "PNG", "threads": 2} | changes
    return RenderRequest(**values)


def test_argv_for_the_bpy_module(tmp_path):
    argv = BlenderRenderer(python="/venv/bin/python").argv(request(tmp_path))
    assert argv == ["/venv/bin/python", str(WORKER), "--scene", str(tmp_path / "shot.blend"),
                    "--frames", "3,4", "--out", str(tmp_path / "out"), "--samples", "8",
                    "--percent", "50", "--format", "PNG", "--device", "cpu",
                    "--threads", "2"]


def test_argv_for_a_blender_executable_runs_no_script_of_the_scene(tmp_path):
    argv = BlenderRenderer(blender="/opt/blender/blender").argv(request(
        tmp_path, image_format="OPEN_EXR", device="auto"))
    assert argv[:argv.index("--")] == [
        "/opt/blender/blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio",
        "--python-exit-code", "4", "-P", str(WORKER)]
    tail = argv[argv.index("--") + 1:]
    assert tail[tail.index("--format") + 1] == "OPEN_EXR"
    assert tail[tail.index("--device") + 1] == "auto"
    assert str(tmp_path / "shot.blend") not in argv[:argv.index("--")]  # opened by the worker


def test_only_gpu_jobs_need_gpu_nodes():
    renderer = BlenderRenderer()
    assert renderer.needs("gpu").gpus == 1 and renderer.needs("auto").gpus == 0
    assert renderer.needs("cpu").scene and "application/x-blender" in renderer.needs(
        "cpu").scene_mimes


def test_lines_are_cut_wherever_the_pipe_splits_them():
    splitter = LineSplitter()
    assert list(splitter.feed(b'FARM_FRAME {"frame": 1, "sec')) == []
    assert list(splitter.feed(b'onds": 0.5}\nFra:2 Mem:12M\nFARM_')) == [
        'FARM_FRAME {"frame": 1, "seconds": 0.5}', "Fra:2 Mem:12M"]
    assert list(splitter.feed(b'SCENE {"fps": 24}\r\n')) == ['FARM_SCENE {"fps": 24}']


@pytest.mark.parametrize("line, parsed", [
    ('FARM_FRAME {"frame": 3, "seconds": 0.52}', ("FARM_FRAME", {"frame": 3, "seconds": 0.52})),
    ('FARM_ERROR {"class": "bad_input"}', ("FARM_ERROR", {"class": "bad_input"})),
    ("Fra:3 Mem:11.75M (Peak 12.63M) | Time:00:00.51", None),
    ("FARM_FRAME not json", None),
    ("FARM_FRAME [1, 2]", None),
])
def test_parse_line(line, parsed):
    assert parse_line(line) == parsed


async def streamed(tmp_path: Path, stdout: bytes) -> _FrameStream:
    seen = []

    async def on_frame(report):
        seen.append(report.frame)

    stream = _FrameStream(request(tmp_path), on_frame)
    for piece in (stdout[:7], stdout[7:]):
        stream.feed(piece)
    await stream.close()
    assert seen == [f.frame for f in stream.frames]
    return stream


def result(code: int, stderr: str = "") -> ToolResult:
    return ToolResult(code, b"", stderr, 1.0, peak_rss=400 * 2**20)


FRAMES = (b'FARM_SCENE {"fps": 24.0, "device": "CPU"}\n'
          b'FARM_FRAME {"frame": 3, "seconds": 0.5, "peak_rss": 300000000, "rss": 1}\n'
          b'FARM_FRAME {"frame": 4, "seconds": 0.6, "peak_rss": 310000000, "rss": 2}\n')


async def test_every_frame_rendered_is_a_success_with_per_frame_metrics(tmp_path):
    stream = await streamed(tmp_path, FRAMES)
    classify(result(0), stream, request(tmp_path))
    assert stream.scene["fps"] == 24.0
    assert [f.metrics() for f in stream.frames] == [
        {"frame": 3, "seconds": 0.5, "peak_rss": 300000000, "rss": 1},
        {"frame": 4, "seconds": 0.6, "peak_rss": 310000000, "rss": 2}]
    assert stream.frames[0].path == tmp_path / "out" / "00003.png"


@pytest.mark.parametrize("stdout, code, stderr, failure, oom, words", [
    (b'FARM_ERROR {"class": "bad_input", "message": "cannot open the scene: Missing DNA'
     b' block"}\n', 3, "", "bad_input", False, "Missing DNA block"),
    (b'FARM_ERROR {"class": "crash", "message": "frame 3: boom"}\n', 4, "", "crash", False,
     "boom"),
    (b"", -signal.SIGKILL, "", "crash", True, "SIGKILL (out of memory"),
    (b"", -signal.SIGSEGV, "Segmentation fault", "crash", False, "SIGSEGV"),
    (b"", 1, "Error: Out of memory in CUDA queue enqueue", "crash", True, "out of memory"),
    (b"", 1, "Traceback...\nRuntimeError: something odd", "crash", False, "something odd"),
    (FRAMES.splitlines(keepends=True)[1], 0, "", "crash", False, "without frames [4]"),
])
async def test_failures_are_classified(tmp_path, stdout, code, stderr, failure, oom, words):
    stream = await streamed(tmp_path, stdout)
    with pytest.raises(RenderFailed) as caught:
        classify(result(code, stderr), stream, request(tmp_path))
    assert caught.value.failure_class == failure and caught.value.oom is oom
    assert words in caught.value.message


@pytest.mark.parametrize("content, ok", [
    (b"BLENDER-v405REND" + b"\0" * 64, True),
    (b"\x28\xb5\x2f\xfd" + b"\0" * 64, True),   # zstd-compressed (Blender 3.0+)
    (b"\x1f\x8b\x08\x00" + b"\0" * 64, True),   # gzip-compressed (before 3.0)
    (b"PK\x03\x04 not a blend file", False),
    (b"", False),
])
def test_the_scene_header_is_checked_before_blender_starts(tmp_path, content, ok):
    scene = tmp_path / "shot.blend"
    scene.write_bytes(content)
    if ok:
        check_scene(scene)
    else:
        with pytest.raises(RenderFailed) as caught:
            check_scene(scene)
        assert caught.value.failure_class == "bad_input"


def test_a_missing_scene_is_bad_input(tmp_path):
    with pytest.raises(RenderFailed) as caught:
        check_scene(tmp_path / "gone.blend")
    assert caught.value.failure_class == "bad_input"


def test_render_failures_survive_pickling():
    import pickle

    again = pickle.loads(pickle.dumps(RenderFailed("x", failure_class="timeout", oom=True)))
    assert (again.message, again.failure_class, again.oom) == ("x", "timeout", True)


@pytest.mark.parametrize("name, frame", [("shot_0012.png", 12), ("12.png", 12),
                                         ("beauty.v003.0012.exr", 12), ("none.png", None)])
def test_the_command_renderer_reads_frames_from_file_names(name, frame):
    assert frame_of(Path(name)) == frame


def test_the_command_renderer_runs_per_frame_or_per_chunk(tmp_path):
    renderer = CommandRenderer()
    per_frame = request(tmp_path, argv=["dcc", "-f", "{frame:04d}", "-o", "{output}",
                                        "{scene}"])
    assert renderer.runs(per_frame) == [[3], [4]]
    assert renderer.expand(per_frame, [4]) == ["dcc", "-f", "0004", "-o", str(tmp_path / "out"),
                                               str(tmp_path / "shot.blend")]
    per_chunk = request(tmp_path, argv=["dcc", "{first}", "{last}"])
    assert renderer.runs(per_chunk) == [[3, 4]]
    assert renderer.expand(per_chunk, [3, 4]) == ["dcc", "3", "4"]
