"""Out-of-memory renders retry on a node with more memory when the farm has one."""

from __future__ import annotations

from pipelines.farm.dispatcher import Dispatcher
from pipelines.farm.node_state import NodeState
from pipelines.farm.outcomes import OutcomeHandler
from pipelines.farm.ports import NodeInfo
from pipelines.farm.render_runner import frame_metrics
from pipelines.render.base import FrameReport

GIB = 2**30
REQ = {"slots": 1.0, "gpus": 0, "memory_bytes": 0, "tags": []}


def dispatcher(*nodes: NodeInfo) -> Dispatcher:
    farm = Dispatcher(store=None, directory=None, events=None)  # type: ignore[arg-type]
    farm.nodes = {n.node_id: NodeState(n, 0.0) for n in nodes}
    return farm


def test_the_next_bigger_node_that_meets_the_other_requirements():
    farm = dispatcher(NodeInfo("small", 2, memory_bytes=8 * GIB),
                      NodeInfo("gpu-big", 2, gpus=1, memory_bytes=64 * GIB),
                      NodeInfo("big", 2, memory_bytes=32 * GIB,
                               tags=frozenset({"linux"})),
                      NodeInfo("huge", 2, memory_bytes=128 * GIB))
    assert farm._bigger_node("small", REQ) == 32 * GIB
    assert farm._bigger_node("small", REQ | {"gpus": 1}) == 64 * GIB
    assert farm._bigger_node("small", REQ | {"tags": ["linux"]}) == 32 * GIB
    assert farm._bigger_node("huge", REQ) is None
    assert farm._bigger_node("gone", REQ) == 8 * GIB  # a lost node: any node will do


def handler(bigger: int | None) -> OutcomeHandler:
    return OutcomeHandler(None, None, None, None, None, None, {},  # type: ignore[arg-type]
                          bigger_node=lambda node_id, requirements: bigger)


def test_only_out_of_memory_failures_raise_the_memory_requirement():
    task = {"requirements": REQ}
    assert handler(32 * GIB)._more_memory({"oom": True, "node_id": "small"}, task) == {
        "requirements": REQ | {"memory_bytes": 32 * GIB}}
    assert handler(32 * GIB)._more_memory({"node_id": "small"}, task) == {}
    assert handler(None)._more_memory({"oom": True, "node_id": "huge"}, task) == {}
    asked = {"requirements": REQ | {"memory_bytes": 64 * GIB}}
    assert handler(32 * GIB)._more_memory({"oom": True, "node_id": "x"}, asked) == {}


def test_chunk_metrics_sum_frame_times_and_keep_the_peak(tmp_path):
    reports = [FrameReport(2, tmp_path, 0.5, 300, 200), FrameReport(1, tmp_path, 0.25, 350, 1)]
    metrics = frame_metrics(reports, process_peak=400)
    assert metrics["frame_count"] == 2 and metrics["frame_seconds"] == 0.75
    assert metrics["peak_rss"] == 400
    assert [f["frame"] for f in metrics["frames"]] == [1, 2]
    assert frame_metrics([], None)["peak_rss"] is None
