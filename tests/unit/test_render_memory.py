"""Out-of-memory renders retry on a node with more memory when the farm has one."""

from __future__ import annotations

from pipelines.farm.control.node_state import NodeState, NodeTable
from pipelines.farm.control.outcomes import OutcomeHandler
from pipelines.farm.control.ports import NodeInfo
from pipelines.farm.node.render import frame_metrics
from pipelines.farm.protocol import FailureClass, Finished
from pipelines.render.base import FrameReport

GIB = 2**30
REQ = {"slots": 1.0, "gpus": 0, "memory_bytes": 0, "tags": []}


def table(*nodes: NodeInfo) -> NodeTable:
    farm = NodeTable()
    farm.update({n.node_id: NodeState(n, 0.0) for n in nodes})
    return farm


def test_the_next_bigger_node_that_meets_the_other_requirements():
    farm = table(NodeInfo("small", 2, memory_bytes=8 * GIB),
                      NodeInfo("gpu-big", 2, gpus=1, memory_bytes=64 * GIB),
                      NodeInfo("big", 2, memory_bytes=32 * GIB,
                               tags=frozenset({"linux"})),
                      NodeInfo("huge", 2, memory_bytes=128 * GIB))
    assert farm.bigger_memory("small", REQ) == 32 * GIB
    assert farm.bigger_memory("small", REQ | {"gpus": 1}) == 64 * GIB
    assert farm.bigger_memory("small", REQ | {"tags": ["linux"]}) == 32 * GIB
    assert farm.bigger_memory("huge", REQ) is None
    assert farm.bigger_memory("gone", REQ) == 8 * GIB  # a lost node: any node will do


def handler(bigger: int | None) -> OutcomeHandler:
    return OutcomeHandler(None, None, None, None, None, None, {},  # type: ignore[arg-type]
                          bigger_node=lambda node_id, requirements: bigger)


def failed(node_id: str, oom: bool = False) -> Finished:
    return Finished(task_id="t", job_id="j", studio_id="s", kind="render", attempt=1,
                    node_id=node_id, ok=False, failure_class=FailureClass.CRASH, oom=oom)


def test_only_out_of_memory_failures_raise_the_memory_requirement():
    task = {"requirements": REQ}
    assert handler(32 * GIB)._more_memory(failed("small", oom=True), task) == {
        "requirements": REQ | {"memory_bytes": 32 * GIB}}
    assert handler(32 * GIB)._more_memory(failed("small"), task) == {}
    assert handler(None)._more_memory(failed("huge", oom=True), task) == {}
    asked = {"requirements": REQ | {"memory_bytes": 64 * GIB}}
    assert handler(32 * GIB)._more_memory(failed("x", oom=True), asked) == {}


def test_chunk_metrics_sum_frame_times_and_keep_the_peak(tmp_path):
    reports = [FrameReport(2, tmp_path, 0.5, 300, 200), FrameReport(1, tmp_path, 0.25, 350, 1)]
    metrics = frame_metrics(reports, process_peak=400)
    assert metrics["frame_count"] == 2 and metrics["frame_seconds"] == 0.75
    assert metrics["peak_rss"] == 400
    assert [f["frame"] for f in metrics["frames"]] == [1, 2]
    assert frame_metrics([], None)["peak_rss"] is None
