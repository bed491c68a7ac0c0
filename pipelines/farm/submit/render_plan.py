"""A render job's tasks: chunks in an early-spread order, progressive previews, assembly.

Chunks are handed out in *spread order*: the first, the last, the middle, then the middles
of each gap, breadth first. After the first three chunks the whole shot is already
sampled at its ends and middle, which is what a director wants to see first.

Progressive previews are tasks of their own that depend on the first `m` chunks in spread
order, for `m` = 3, 6, 12, 24, ... (each preview covers at least twice the chunks of the
one before, so all previews together cost less than two assemblies of the finished shot).
They are placed right after their last chunk, so once ready they run before the chunks
still waiting. The assembly depends on every chunk.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pipelines.farm.frames import chunk

FIRST_PREVIEW_CHUNKS = 3


def spread_order(count: int) -> list[int]:
    """0, count-1, the middle, then bisecting every gap, breadth first; each index once."""
    if count <= 0:
        return []
    order = [0] if count == 1 else [0, count - 1]
    gaps = deque([(0, count - 1)])
    while gaps:
        low, high = gaps.popleft()
        if high - low < 2:
            continue
        middle = (low + high) // 2
        order.append(middle)
        gaps.extend(((low, middle), (middle, high)))
    return order


def preview_points(chunks: int, first: int = FIRST_PREVIEW_CHUNKS) -> list[int]:
    """After how many chunks (in spread order) a progressive preview is made: 3, 6, 12...
    Never at the last chunk: the assembly makes the finished movie then."""
    points, at = [], first
    while at < chunks:
        points.append(at)
        at *= 2
    return points


@dataclass(frozen=True)
class PlannedTask:
    kind: str                      # render | progressive | assemble
    frames: list[int]              # rendered frames (render); covered frames (the others)
    deps: list[int] = field(default_factory=list)  # indices of the tasks it waits for


def plan(frames: list[int], chunk_size: int, previews: bool = True) -> list[PlannedTask]:
    """The tasks of a render job, in index order (the farm leases a job's tasks in it)."""
    chunks = chunk(frames, chunk_size)
    points = set(preview_points(len(chunks))) if previews else set()
    tasks: list[PlannedTask] = []
    renders: list[int] = []
    covered: list[int] = []
    for position, index in enumerate(spread_order(len(chunks)), start=1):
        renders.append(len(tasks))
        covered += chunks[index]
        tasks.append(PlannedTask("render", chunks[index]))
        if position in points:
            tasks.append(PlannedTask("progressive", sorted(covered), list(renders)))
    tasks.append(PlannedTask("assemble", list(frames), list(renders)))
    return tasks
