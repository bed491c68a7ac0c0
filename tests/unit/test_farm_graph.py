"""Layered jobs compiled into tasks: dependencies whole and frame by frame, lease order
that follows the graph, and every bad graph refused naming its layer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.farm.frames import BadFrameRange, chunk, format_frames, parse_frames
from pipelines.farm.submit.graph import BadLayers, Dependency, Layer, compile_tasks

REQ = {"slots": 1.0, "gpus": 0, "memory_bytes": 0, "tags": []}


def job(**extra) -> dict:
    return {"_id": "j", "studio_id": "s", "requirements": REQ, "task_timeout_s": 60.0,
            "created_s": 0.0, **extra}


def layer(name: str, frames: str = "", size: int = 1, *deps: Dependency) -> Layer:
    return Layer(name, "command", {"argv": [name]}, parse_frames(frames) if frames else [],
                 size, deps)


def by_layer(tasks: list[dict], name: str) -> list[dict]:
    return [t for t in tasks if t["layer"] == name]


def test_render_comp_encode_compiles_with_per_frame_and_whole_dependencies():
    the_job = job()
    tasks = compile_tasks(the_job, [
        layer("render", "1001-1008", 4),
        layer("comp", "1001-1008", 2, Dependency("render", per_frame=True)),
        layer("encode", "", 1, Dependency("comp"))])
    render, comp, encode = (by_layer(tasks, n) for n in ("render", "comp", "encode"))
    assert [t["frames"] for t in render] == [[1001, 1002, 1003, 1004], [1005, 1006, 1007, 1008]]
    # comp 1001-1002 waits for the first render chunk only
    assert [t["deps"] for t in comp] == [[render[0]["_id"]]] * 2 + [[render[1]["_id"]]] * 2
    assert encode[0]["deps"] == [] and encode[0]["wait_layers"] == ["comp"]
    assert [t["state"] for t in tasks].count("ready") == 2  # the render chunks
    # Lease order follows the graph: a comp chunk right after the render chunk it needs.
    assert [(t["layer"], t["frames"][:1]) for t in tasks] == [
        ("render", [1001]), ("comp", [1001]), ("comp", [1003]),
        ("render", [1005]), ("comp", [1005]), ("comp", [1007]), ("encode", [])]
    assert [t["index"] for t in tasks] == list(range(7))
    assert the_job["layers"][1] == {"name": "comp", "kind": "command", "task_count": 4,
                                    "frames": "1001-1008", "chunk_size": 2,
                                    "depends_on": [{"layer": "render", "per_frame": True}]}


def test_a_chunk_spanning_two_render_chunks_waits_for_both():
    tasks = compile_tasks(job(), [layer("render", "1-6", 2),
                                  layer("comp", "1-6", 3, Dependency("render", True))])
    render = by_layer(tasks, "render")
    assert [len(t["deps"]) for t in by_layer(tasks, "comp")] == [2, 2]
    assert by_layer(tasks, "comp")[0]["deps"] == sorted([render[0]["_id"], render[1]["_id"]])


def test_a_job_that_runs_after_another_starts_with_every_task_waiting():
    tasks = compile_tasks(job(after=["a" * 32]), [layer("one", "1-3")])
    assert {t["state"] for t in tasks} == {"waiting"}


@pytest.mark.parametrize("layers, names, words", [
    ([layer("a", "1", 1, Dependency("b"))], "a", "'b', which is not a layer"),
    ([layer("a", "1", 1, Dependency("a"))], "a", "depends on itself"),
    ([layer("a", "1", 1, Dependency("c")), layer("b", "1", 1, Dependency("a")),
      layer("c", "1", 1, Dependency("b"))], "a", "a → c → b → a"),
    ([layer("a", "1"), layer("a", "2")], "a", "two layers have this name"),
    ([layer("render", "1-10"), layer("comp", "1-12", 1, Dependency("render", True))],
     "comp", "no frame 11-12"),
    ([layer("render", "1-10"), layer("comp", "", 1, Dependency("render", True))],
     "comp", "has no frames to wait for"),
    ([], None, "1 to 64 layers"),
])
def test_bad_graphs_are_refused_naming_the_layer(layers, names, words):
    with pytest.raises(BadLayers) as refused:
        compile_tasks(job(), layers)
    assert words in refused.value.message
    if names:
        assert refused.value.message.startswith(f"layer {names!r}")
        assert refused.value.details[0]["loc"] == ["body", "layers", names]


@pytest.mark.parametrize("spec, frames", [
    ("1001-1004", [1001, 1002, 1003, 1004]),
    ("1-10x3", [1, 4, 7, 10]),
    ("1-3,20,30-31", [1, 2, 3, 20, 30, 31]),
    ("-2-2", [-2, -1, 0, 1, 2]),
    ("-10--8", [-10, -9, -8]),
    ("0", [0]),
    (" 5 , 1-2 ", [1, 2, 5]),
    ("1-5,3-8", list(range(1, 9))),
])
def test_frame_ranges_as_studios_write_them(spec, frames):
    assert parse_frames(spec) == frames


@pytest.mark.parametrize("spec", ["", "10-1", "1-5x0", "a", "1--", "1,,2", "0-100000"])
def test_frame_ranges_that_mean_nothing_are_refused(spec):
    with pytest.raises(BadFrameRange):
        parse_frames(spec)


def test_chunks_are_runs_of_the_sorted_frames():
    assert chunk(parse_frames("1-10x2"), 2) == [[1, 3], [5, 7], [9]]
    assert chunk(parse_frames("-1-1"), 2) == [[-1, 0], [1]]


@given(st.sets(st.integers(-10_000, 10_000), min_size=1, max_size=200))
def test_format_frames_is_read_back_as_the_same_frames(frames):
    assert parse_frames(format_frames(sorted(frames))) == sorted(frames)
