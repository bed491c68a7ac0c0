"""The dispatcher ↔ node messages: typed both ends, plain dicts on the wire, another
version refused with both versions named (a node must never misread its work)."""

from __future__ import annotations

import pickle

import pytest

from pipelines.farm.protocol import (
    PROTOCOL_VERSION,
    Attempt,
    FailureClass,
    Finished,
    Heartbeat,
    Progressed,
    ProtocolMismatch,
    Started,
    TaskFailed,
    TaskSpec,
    read_attempts,
    read_heartbeat,
    read_reports,
    read_specs,
)

SPEC = TaskSpec(task_id="j-00001", job_id="j", studio_id="s", kind="render", attempt=2,
                frames=[1001, 1002], payload={"renderer": "blender"}, timeout_s=60.0,
                node_id="n1", slots=2.0, node_slots=8.0)


def test_messages_cross_the_wire_as_plain_dicts_and_come_back_equal():
    wire = [Started.about(SPEC, "n1").wire(), Progressed.about(SPEC, "n1", progress=0.5).wire(),
            Finished.about(SPEC, "n1", ok=False, failure_class=FailureClass.TIMEOUT,
                           results={"previews": {"keys": {}}}).wire()]
    assert all(type(w) is dict and w["protocol"] == PROTOCOL_VERSION for w in wire)
    started, progressed, finished = read_reports(wire)
    assert isinstance(started, Started) and progressed.progress == 0.5
    assert finished.failure_class is FailureClass.TIMEOUT and finished.attempt == 2
    assert read_specs([SPEC.wire()]) == [SPEC]
    assert SPEC.job_prefix == "studios/s/jobs/j"
    beat = Heartbeat(node_id="n1", running=[Attempt(task_id="t", attempt=1)])
    assert read_heartbeat(beat.wire()) == beat
    assert read_attempts([Attempt(task_id="t", attempt=3).wire()]) == [
        Attempt(task_id="t", attempt=3)]


@pytest.mark.parametrize("wire, found", [
    ({**SPEC.wire(), "protocol": PROTOCOL_VERSION + 1}, PROTOCOL_VERSION + 1),
    ({k: v for k, v in SPEC.wire().items() if k != "protocol"}, None),
    (["j-00001", 2], None),  # what a node of before the protocol sent
])
def test_another_version_is_refused_naming_both(wire, found):
    with pytest.raises(ProtocolMismatch) as refused:
        read_specs([wire])
    assert refused.value.found == found
    assert f"protocol {found!r}" in refused.value.message
    assert f"speaks {PROTOCOL_VERSION}" in refused.value.message


def test_a_malformed_message_of_this_version_is_refused_plainly():
    wire = Started.about(SPEC, "n1").wire() | {"attempt": "two"}
    with pytest.raises(ProtocolMismatch, match="malformed"):
        read_reports([wire])
    with pytest.raises(ProtocolMismatch):
        read_reports([Started.about(SPEC, "n1").wire() | {"report": "exploded"}])
    with pytest.raises(ProtocolMismatch):
        read_heartbeat({"protocol": PROTOCOL_VERSION, "node_id": "n1", "running": "all"})


def test_messages_are_frozen():
    with pytest.raises(ValueError):
        SPEC.attempt = 3  # type: ignore[misc]


def test_the_errors_cross_process_boundaries_whole():
    mismatch = pickle.loads(pickle.dumps(ProtocolMismatch("a node agent", 7)))
    assert (mismatch.found, mismatch.message) == (7, ProtocolMismatch("a node agent", 7).message)
    failed = pickle.loads(pickle.dumps(TaskFailed("no", failure_class="bad_input", exit_code=2)))
    assert (failed.message, failed.failure_class, failed.exit_code) == ("no", "bad_input", 2)
