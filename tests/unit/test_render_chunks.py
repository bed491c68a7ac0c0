"""Render job DAGs: chunks in early-spread order, progressive previews, one assembly."""

from __future__ import annotations

import pytest

from pipelines.farm.frames import parse_frames
from pipelines.farm.submit.graph import compile_tasks
from pipelines.farm.submit.render import render_layers
from pipelines.farm.submit.render_plan import preview_points, spread_order

REQ = {"slots": 1.0, "gpus": 0, "memory_bytes": 0, "tags": []}


def plan(frames: list[int], chunk_size: int, previews: bool = True) -> list[dict]:
    """The tasks of a render job, in lease order, as the job type compiles them."""
    job = {"_id": "j", "studio_id": "s", "requirements": REQ, "task_timeout_s": 60.0,
           "created_s": 0.0}
    tasks = compile_tasks(job, render_layers(frames, chunk_size, previews, {}, {}, REQ, REQ))
    index = {t["_id"]: t["index"] for t in tasks}
    for task in tasks:
        task["deps"] = [index[d] for d in task["deps"]]
    return tasks


@pytest.mark.parametrize("count", [*range(0, 40), 97, 1000])
def test_spread_order_is_a_permutation(count):
    assert sorted(spread_order(count)) == list(range(count))


def test_spread_order_starts_with_the_ends_and_the_middle_then_bisects():
    assert spread_order(1) == [0]
    assert spread_order(2) == [0, 1]
    assert spread_order(9) == [0, 8, 4, 2, 6, 1, 3, 5, 7]
    assert spread_order(12)[:5] == [0, 11, 5, 2, 8]


def test_previews_come_after_3_then_each_doubling_of_chunks_never_at_the_last():
    assert preview_points(3) == []
    assert preview_points(4) == [3]
    assert preview_points(12) == [3, 6]
    assert preview_points(13) == [3, 6, 12]
    assert preview_points(1000) == [3, 6, 12, 24, 48, 96, 192, 384, 768]


def test_the_plan_of_24_frames_in_chunks_of_2():
    tasks = plan(parse_frames("1-24"), 2)
    kinds = [t["kind"] for t in tasks]
    assert kinds.count("render") == 12 and kinds[-1] == "assemble"
    assert [i for i, k in enumerate(kinds) if k == "progressive"] == [3, 7]
    renders = [t for t in tasks if t["kind"] == "render"]
    assert [t["frames"] for t in renders[:3]] == [[1, 2], [23, 24], [11, 12]]
    assert sorted(f for t in renders for f in t["frames"]) == list(range(1, 25))
    first_preview = tasks[3]
    assert first_preview["deps"] == [0, 1, 2]
    assert first_preview["frames"] == [1, 2, 11, 12, 23, 24]
    assert tasks[7]["deps"] == [0, 1, 2, 4, 5, 6]  # the six chunks placed before it
    assembly = tasks[-1]
    assert assembly["wait_layers"] == ["render"] and assembly["state"] == "waiting"
    assert assembly["frames"] == list(range(1, 25))
    assert [t["layer"] for t in tasks if t["state"] == "ready"] == ["render"] * 12


def test_every_dependency_points_backwards_so_the_dag_has_no_cycle():
    for index, task in enumerate(plan(parse_frames("1-500x3"), 4)):
        assert all(dep < index for dep in task["deps"])


def test_no_previews_when_switched_off_or_too_few_chunks():
    assert [t["kind"] for t in plan([1, 2, 3, 4], 2, previews=False)] == [
        "render", "render", "assemble"]
    assert [t["kind"] for t in plan(parse_frames("1-6"), 2)] == [
        "render", "render", "render", "assemble"]
