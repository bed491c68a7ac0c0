"""What keeps a round short on a big farm: its size follows its length, the node table is
written a slice at a time, and a node's used slots are kept, not summed every round."""

from __future__ import annotations

import gc
import time

from pipelines.farm.control.config import FULL_COLLECTION_AFTER, collect_garbage_rarely
from pipelines.farm.control.node_state import (
    NODE_DOCS_PER_SAVE,
    EndRate,
    Lease,
    Leases,
    NodeDocs,
    NodeState,
    NodeTable,
)
from pipelines.farm.control.pacing import LEAST, LeasePacer
from pipelines.farm.control.ports import NodeInfo


def spend(pacer: LeasePacer, seconds: float) -> None:
    pacer.spent = seconds
    pacer.round_over()


def test_a_round_whose_reports_and_leases_ran_long_leases_fewer_next_time_in_proportion():
    pacer = LeasePacer(most=2000, target_s=0.5)
    assert pacer.limit == 4 * LEAST  # a dispatcher starting on a backlog starts small
    spend(pacer, 0.5 / 1.25)
    assert pacer.limit == 250
    spend(pacer, 1.0)
    assert pacer.limit == 125


def test_short_rounds_grow_the_limit_by_a_quarter_at_most_up_to_the_most():
    pacer = LeasePacer(most=2000, target_s=0.5)
    spend(pacer, 50.0)
    assert pacer.limit == LEAST  # never less: the farm keeps filling however slow
    spend(pacer, 0.001)
    assert pacer.limit == int(1.25 * LEAST)
    for _ in range(30):
        spend(pacer, 0.001)
    assert pacer.limit == 2000


def test_the_time_spent_is_what_ran_inside_paced_blocks():
    pacer = LeasePacer(most=2000, target_s=0.5)
    with pacer.paced():
        time.sleep(0.01)
    time.sleep(0.02)  # outside: not counted
    assert 0.01 <= pacer.spent < 0.02
    pacer.round_over()
    assert pacer.spent == 0.0


def node(node_id: str, running: list[str]) -> dict:
    return {"_id": node_id, "running_tasks": running, "seen_s": 0.0}


def test_the_node_table_is_first_written_a_slice_a_second_and_then_only_what_changed():
    docs = NodeDocs()
    farm = [node(f"n{i:05d}", []) for i in range(2 * NODE_DOCS_PER_SAVE + 10)]
    written, gone = docs.to_write(farm, now=0.0)
    # The first save drops what an earlier run left (gone None), and writes one slice.
    assert gone is None and len(written) == NODE_DOCS_PER_SAVE
    written, gone = docs.to_write(farm, now=1.0)
    assert gone == [] and len(written) == NODE_DOCS_PER_SAVE
    written, _ = docs.to_write(farm, now=2.0)
    assert [d["_id"] for d in written] == [d["_id"] for d in farm[-10:]]
    assert docs.to_write(farm, now=3.0) == ([], [])
    farm[3] = node("n00003", ["task-1"])
    written, gone = docs.to_write(farm[1:], now=4.0)
    assert [d["_id"] for d in written] == ["n00003"] and gone == ["n00000"]


def test_a_node_s_used_slots_follow_its_leases_as_they_come_and_go():
    leases = Leases()
    leases["a"] = Lease(1, 0.1, "s", "j")
    leases["b"] = Lease(1, 0.2, "s", "j")
    leases["a"] = Lease(2, 0.5, "s", "j")  # a new attempt replaces the old lease
    assert abs(leases.slots - 0.7) < 1e-9
    assert leases.pop("missing") is None
    del leases["b"]
    assert leases.pop("a").attempt == 2
    assert leases.slots == 0.0 and not leases  # nothing left over from the sums


def test_a_node_s_recent_ends_are_those_of_this_second_and_the_last():
    rate = EndRate()
    for now, slots in ((10.1, 1), (10.5, 2), (11.2, 1)):
        rate.ended(now, slots)
    assert rate.recent(11.9) == 4  # slots, not tasks
    assert rate.recent(12.0) == 1  # the 10th second is over
    assert rate.recent(14.0) == 0
    rate.ended(20.0, 1)
    assert rate.recent(20.5) == 1  # a quiet gap forgets everything before it


def test_a_node_is_leased_ahead_what_it_ended_lately_up_to_its_allowance():
    node = NodeState(NodeInfo("n1", 4.0), last_seen=0.0)
    assert node.ahead(1.0, 10.0) == 4  # holding nothing: the whole allowance
    node.running["t1"] = Lease(1, 1.0, "s", "j")
    assert node.ahead(1.0, 10.0) == 0  # busy, nothing ended: nothing ahead
    for _ in range(3):
        node.ends.ended(10.0, 1.0)
    assert node.ahead(1.0, 10.5) == 3
    for _ in range(9):
        node.ends.ended(10.5, 1.0)
    assert node.ahead(1.0, 10.5) == 4  # at most 1.0 x its 4 slots
    assert node.ahead(0.0, 10.5) == 0  # leasing ahead turned off
    assert node.ahead(1.0, 13.0) == 0  # quiet for seconds


def test_a_task_bigger_than_every_node_still_finds_an_idle_one():
    table = NodeTable()
    table["n1"] = NodeState(NodeInfo("n1", 4.0), last_seen=0.0)
    [view] = table.views(1.0, 10.0)
    assert view.slots_free == 8  # a 6-slot task fits: it will run there alone


def test_the_dispatcher_s_process_walks_its_long_lived_objects_rarely():
    """Young objects are collected as before; a full collection waits far longer (the
    pauses it saves are measured by bench/farm_scale.py)."""
    before = gc.get_threshold()
    try:
        collect_garbage_rarely()
        assert gc.get_threshold() == (*before[:2], FULL_COLLECTION_AFTER)
    finally:
        gc.set_threshold(*before)
