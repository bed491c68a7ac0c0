"""The indexed scheduler places exactly as the plain policy does (tests/support/
reference_scheduler.py) on random farms and queues: same tasks, same nodes, same order;
and the queue it keeps between rounds gives the same answer as one built afresh."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.farm.control.ready_queue import ReadyQueue
from pipelines.farm.control.scheduler import NodeView, Scheduler, TaskView, node_index
from tests.support.reference_scheduler import ReferenceScheduler

TAGS = st.frozensets(st.sampled_from(["linux", "cuda", "houdini"]), max_size=2)
MEMORY = st.sampled_from([0, 8, 16, 64])


@st.composite
def farms(draw):
    count = draw(st.integers(1, 10))
    nodes = [NodeView(f"n{i}", draw(st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0])),
                      draw(st.sampled_from([0.0, 0.0, 1.0, 3.0])), draw(st.integers(0, 2)),
                      draw(MEMORY), draw(TAGS)) for i in range(count)]
    node_ids = [n.node_id for n in nodes]
    tasks = []
    for j in range(draw(st.integers(0, 6))):
        studio = draw(st.sampled_from("ABCD"))
        priority, created = draw(st.sampled_from([10, 50, 90])), draw(st.integers(0, 3))
        bad = draw(st.frozensets(st.sampled_from(node_ids), max_size=2))
        for index in draw(st.lists(st.integers(0, 30), unique=True, max_size=12)):
            tasks.append(TaskView(
                f"t{j}-{index}", f"job{j}", studio, draw(st.sampled_from(["render", "preview"])),
                priority, float(created), index, draw(st.sampled_from([0.5, 1.0, 2.0])),
                draw(st.sampled_from([0, 0, 1])), draw(MEMORY), draw(TAGS), bad))
    closed = draw(st.frozensets(st.tuples(st.sampled_from(node_ids),
                                          st.sampled_from(["render", "preview"]))))
    trials = draw(st.frozensets(st.sampled_from(node_ids), max_size=2))
    running = draw(st.dictionaries(st.sampled_from("ABCD"), st.integers(0, 5)))
    return nodes, tasks, closed, trials, running


def circuits(closed, trials):
    """Closed (node, kind) pairs never take work; a half-open node takes one task."""
    tried: set[str] = set()

    def allowed(node_id: str, kind: str) -> bool:
        return (node_id, kind) not in closed and not (node_id in trials and node_id in tried)

    def placed(node_id: str, kind: str) -> None:
        tried.add(node_id)
    return allowed, placed


def ids(plan):
    return [(task.task_id, node_id) for task, node_id in plan]


@settings(max_examples=400, deadline=None)
@given(farms())
def test_the_indexed_scheduler_places_as_the_plain_policy(farm):
    nodes, tasks, closed, trials, running = farm
    expected = ReferenceScheduler(*circuits(closed, trials)).plan(
        tasks, [replace(n) for n in nodes], running)
    got = Scheduler(*circuits(closed, trials)).plan(tasks, [replace(n) for n in nodes], running)
    assert ids(got) == ids(expected)


@settings(max_examples=200, deadline=None)
@given(farms(), st.data())
def test_a_queue_kept_between_rounds_answers_as_a_fresh_one(farm, data):
    """Round one places some tasks; tasks are then dropped (cancelled) and added back
    (retried); round two, on the kept queue, places as a queue built from what is left."""
    nodes, tasks, closed, trials, running = farm
    kept = ReadyQueue(tasks)
    half = [replace(n, slots_total=n.slots_total / 2) for n in nodes]
    first = Scheduler().place(kept, node_index(half), running)
    placed = {task.task_id for task, _ in first}
    left = [t for t in tasks if t.task_id not in placed]
    dropped = set(data.draw(st.lists(st.sampled_from([t.task_id for t in left] or ["-"]))))
    back = data.draw(st.lists(st.sampled_from(sorted(placed) or ["-"])))
    for task_id in dropped:
        kept.discard(task_id)
    by_id = {t.task_id: t for t in tasks}
    for task_id in back:
        if task_id in by_id:
            kept.add(by_id[task_id])
    remaining = [t for t in tasks if t.task_id in kept]
    assert len(kept) == len(remaining)
    again = Scheduler(*circuits(closed, trials)).place(kept, node_index(nodes), running)
    fresh = Scheduler(*circuits(closed, trials)).plan(remaining, [replace(n) for n in nodes],
                                                      running)
    assert ids(again) == ids(fresh)
