"""The order of a render job's chunks and when its progressive previews are made.

Chunks are handed out in *spread order*: the first, the last, the middle, then the middles
of each gap, breadth first. After the first three chunks the whole shot is already
sampled at its ends and middle, which is what a director wants to see first.

Progressive previews are tasks of their own that depend on the first `m` chunks in spread
order, for `m` = 3, 6, 12, 24, ... (each preview covers at least twice the chunks of the
one before, so all previews together cost less than two assemblies of the finished shot).
They are leased right after their last chunk (`graph.py` orders tasks after what they
wait for), so once ready they run before the chunks still waiting. The assembly depends
on every chunk.
"""

from __future__ import annotations

from collections import deque

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
