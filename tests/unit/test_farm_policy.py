"""Farm policy without Ray: frames, retries, circuits, bad nodes, scheduling."""

from __future__ import annotations

import pytest

from pipelines.errors import InvalidInput
from pipelines.farm.control.policy import BadNodes, CircuitBreakers, CircuitState, RetryPolicy
from pipelines.farm.control.progress import job_status
from pipelines.farm.control.scheduler import NodeView, Scheduler, TaskView
from pipelines.farm.frames import chunk, parse_frames
from pipelines.farm.submit.records import check_template


def test_frame_ranges_as_tds_write_them():
    assert parse_frames("1-10x2,120") == [1, 3, 5, 7, 9, 120]
    assert parse_frames(" 5 , 1-3 ,3") == [1, 2, 3, 5]
    assert parse_frames("-2-1") == [-2, -1, 0, 1]
    assert chunk(list(range(1, 8)), 3) == [[1, 2, 3], [4, 5, 6], [7]]


@pytest.mark.parametrize("spec", ["", "a-b", "10-1", "1-10x0", "1,,2", "1-100000000", "1..5"])
def test_bad_frame_ranges_are_invalid_input(spec):
    with pytest.raises(InvalidInput):
        parse_frames(spec)


def test_command_templates_allow_only_known_placeholders():
    check_template(["render", "-f", "{frame:04d}", "-o", "{output}/x_{first}_{last}.exr"])
    for bad in (["{frames}"], ["{0}"], ["{"], ["{output.__class__}"]):
        with pytest.raises(InvalidInput):
            check_template(bad)


def test_retry_policy_by_failure_class():
    policy = RetryPolicy(initial_s=1.0, max_s=60.0)
    lost = policy.decide("node_lost", attempt=5, max_attempts=1)
    assert lost.retry and not lost.charge_attempt and lost.delay_s == 0
    away = policy.decide("storage", attempt=5, max_attempts=1)  # storage stayed away
    assert away.retry and not away.charge_attempt and 1.0 <= away.delay_s <= 1.5
    assert not policy.decide("bad_input", attempt=1, max_attempts=5).retry
    assert not policy.decide("crash", attempt=3, max_attempts=3).retry
    delays = [policy.decide("timeout", attempt=n, max_attempts=10).delay_s for n in range(1, 6)]
    assert all(b >= a for a, b in zip(delays, delays[1:], strict=False)), delays
    assert 1.0 <= delays[0] <= 1.5 and delays[-1] >= 16


def test_circuit_opens_then_lets_one_trial_through_after_the_cooldown():
    now = [0.0]
    circuits = CircuitBreakers(threshold=2, cooldown_s=10, clock=lambda: now[0])
    assert not circuits.record_failure("n1", "j1")
    assert circuits.record_failure("n1", "j2")  # the second consecutive failure opens it
    assert circuits.state("n1") == CircuitState.OPEN and not circuits.allows("n1")
    now[0] = 10
    assert circuits.allows("n1")
    circuits.on_dispatch("n1")
    assert not circuits.allows("n1")  # one trial at a time
    assert circuits.record_failure("n1", "j2")  # the trial failed: open again, new cooldown
    assert not circuits.allows("n1")
    now[0] = 20
    circuits.on_dispatch("n1")
    circuits.record_success("n1")
    assert circuits.state("n1") == CircuitState.CLOSED


def test_a_trial_killed_or_lost_does_not_hold_the_node_shut():
    now = [0.0]
    circuits = CircuitBreakers(threshold=1, cooldown_s=10, clock=lambda: now[0])
    circuits.record_failure("n1", "j1")
    circuits.record_failure(("n1", "command"), "j1")
    now[0] = 10
    circuits.on_dispatch("n1")
    circuits.on_dispatch(("n1", "command"))
    assert not circuits.allows("n1")
    circuits.trial_over("n1", "command")  # killed through the API: proves nothing
    assert circuits.allows("n1") and circuits.allows(("n1", "command"))
    circuits.on_dispatch("n1")
    circuits.trial_over("n1", "command")  # the next trial crashed: reopened all the same
    assert circuits.record_failure("n1", "j1") and not circuits.allows("n1")


def test_a_success_resets_the_count_of_consecutive_failures():
    circuits = CircuitBreakers(threshold=2)
    circuits.record_failure("n1", "j1")
    circuits.record_success("n1")
    assert not circuits.record_failure("n1", "j2")


def test_one_job_failing_again_and_again_does_not_open_a_node_s_circuit():
    circuits = CircuitBreakers(threshold=2)
    assert not any(circuits.record_failure("n1", "broken") for _ in range(5))
    assert circuits.allows("n1")
    assert circuits.record_failure("n1", "another")  # a second job failing: the node


def test_bad_nodes_are_per_job():
    bad = BadNodes(threshold=3)
    assert [bad.record_failure("job1", "n1") for _ in range(3)] == [False, False, True]
    assert not bad.record_failure("job2", "n1")


def task(task_id, studio="s1", priority=50, created=0.0, index=0, **kw) -> TaskView:
    return TaskView(task_id, f"job-{studio}-{created}", studio, "command", priority, created,
                    index, **kw)


def test_scheduler_priority_then_fairness_then_age():
    node = NodeView("n1", slots_total=3)
    tasks = [task("a1", "A", created=1, index=i) for i in range(3)] + [
        task("b1", "B", created=2), task("urgent", "C", priority=90, created=9)]
    plan = Scheduler().plan(tasks, [node], running_by_studio={"A": 0, "B": 0})
    assert [t.task_id for t, _ in plan] == ["urgent", "a1", "b1"]


def test_scheduler_respects_requirements_slots_circuits_and_bad_nodes():
    nodes = [NodeView("cpu", 4, tags=frozenset({"linux"})),
             NodeView("gpu", 2, gpus=1, tags=frozenset({"linux", "cuda"})),
             NodeView("open", 8)]
    tasks = [task("needs-gpu", gpus=1), task("needs-cuda", tags=frozenset({"cuda"})),
             task("big", slots=3.0), task("banned", bad_nodes=frozenset({"cpu", "gpu"}))]
    plan = dict((t.task_id, n) for t, n in Scheduler(
        allowed=lambda node, kind: node != "open").plan(tasks, nodes, {}))
    assert plan == {"needs-gpu": "gpu", "needs-cuda": "gpu", "big": "cpu"}


def test_a_task_bigger_than_every_node_takes_a_whole_idle_one_instead_of_waiting_forever():
    busy = NodeView("busy", slots_total=4, slots_used=1)
    idle = NodeView("idle", slots_total=4)
    gpu = NodeView("gpu", slots_total=2, gpus=1)
    plan = Scheduler().plan([task("big", slots=16), task("small", index=1, slots=2)],
                            [busy, idle, gpu], {})
    assert [(t.task_id, n) for t, n in plan] == [("big", "idle"), ("small", "busy")]
    assert idle.slots_free < 0  # it holds nothing else while the big task runs
    # Largest among the nodes that meet its other needs: a GPU task on the GPU node.
    plan = Scheduler().plan([task("render", slots=8, gpus=1)], [idle, gpu], {})
    assert [(t.task_id, n) for t, n in plan] == [("render", "gpu")]


def test_job_status_from_task_counts():
    from collections import Counter

    assert job_status("running", Counter(succeeded=3), 3) == "completed"
    assert job_status("running", Counter(succeeded=1, dead=1, running=1), 3) == "failed"
    assert job_status("running", Counter(failed=1, running=1), 2) == "running"
    assert job_status("running", Counter(failed=1, succeeded=1), 2) == "failed"
    assert job_status("paused", Counter(succeeded=3), 3) == "paused"
    assert job_status("queued", Counter(ready=2), 2) == "queued"
