"""A node's slots: tasks leased ahead wait for a slot, and each freed slot goes to one
waiter, in the order they came, never lost to a task cancelled while it waited."""

from __future__ import annotations

import asyncio

import pytest

from pipelines.farm.node.agent import Slots


async def waiter(slots: Slots, need: float, capacity: float = 4) -> asyncio.Task:
    task = asyncio.create_task(slots.acquire(need, capacity))
    await asyncio.sleep(0)  # it reaches its wait
    return task


async def test_no_more_tasks_run_than_the_node_has_slots():
    slots, running, peak = Slots(), 0, 0

    async def task() -> None:
        nonlocal running, peak
        await slots.acquire(1, 4)
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        slots.release(1)

    await asyncio.gather(*(task() for _ in range(40)))
    assert peak == 4 and slots.free == 4 and not slots.waiting


async def test_a_freed_slot_wakes_one_waiter_the_first_to_come():
    slots = Slots()
    await slots.acquire(4, 4)
    queued = [await waiter(slots, 1) for _ in range(100)]
    slots.release(1)
    await asyncio.sleep(0)
    assert [task.done() for task in queued[:2]] == [True, False]
    assert sum(task.done() for task in queued) == 1 and slots.free == 0
    for task in queued:
        task.cancel()
    await asyncio.gather(*queued, return_exceptions=True)


async def test_a_waiter_cancelled_before_its_turn_takes_nothing():
    slots = Slots()
    await slots.acquire(4, 4)
    first, second = await waiter(slots, 1), await waiter(slots, 1)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    slots.release(1)
    await second
    assert slots.free == 0 and not slots.waiting


async def test_a_waiter_cancelled_after_it_was_given_slots_gives_them_back():
    slots = Slots()
    await slots.acquire(4, 4)
    queued = await waiter(slots, 2)
    slots.release(2)  # granted; cancelled before it could resume
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert slots.free == 2


async def test_a_task_bigger_than_the_node_runs_alone_once_the_node_is_empty():
    slots = Slots()
    await slots.acquire(1, 4)
    big = await waiter(slots, 6)
    assert not big.done()
    slots.release(1)
    await big
    assert slots.free == -2
    slots.release(6)
    assert slots.free == 4


async def test_a_smaller_task_takes_slots_a_bigger_earlier_one_cannot_use_yet():
    slots = Slots()
    await slots.acquire(4, 4)
    big, small = await waiter(slots, 3), await waiter(slots, 1)
    slots.release(1)
    await small
    assert not big.done()
    slots.release(3)  # the small one still holds 1: 3 free, enough for the big one
    await big
    assert slots.free == 0


async def test_a_task_that_fits_the_free_slots_does_not_wait_behind_one_that_does_not():
    slots = Slots()
    await slots.acquire(3, 4)  # a long frame on 3 of 4 slots
    bigger = await waiter(slots, 2)
    await asyncio.wait_for(slots.acquire(1, 4), 1)  # the free slot is taken at once
    assert not bigger.done() and slots.free == 0
    bigger.cancel()
    await asyncio.gather(bigger, return_exceptions=True)


async def test_fractional_slots_given_back_in_another_order_leave_the_node_whole():
    slots = Slots()
    for need in (0.1, 0.2, 0.3):
        await slots.acquire(need, 1)
    big = await waiter(slots, 1.5, capacity=1)
    for need in (0.2, 0.3, 0.1):  # the sum is a hair under 1.0 in floating point
        slots.release(need)
    await asyncio.wait_for(big, 1)  # it runs alone rather than never
