"""The farm's nodes indexed by what they offer, so a task finds its node in about log time.

Nodes are grouped by shape (GPUs, memory, tag set); a farm has few shapes however many
nodes it has. Within a shape, a heap orders the nodes by free slots, most first. A task
looks only at the shapes that meet its requirements (cached per requirement set) and takes
the top node of the best one: O(shapes that fit + log nodes) per placement, instead of a
scan of every node.

Heap entries are never updated in place: a node that takes a task gets a new entry and its
old one is dropped when it reaches the top (it no longer matches the node's free slots).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Shape = tuple[int, int, frozenset[str]]  # GPUs, memory in bytes, tags
EPSILON = 1e-9  # slots are floats: 0.1 + 0.2 must fit in 0.3


@dataclass
class IndexedNode:
    node_id: str
    free: float
    rank: int  # ties on free slots go to the larger node id, as they always did
    shape: Shape


def meets(shape: Shape, gpus: int, memory_bytes: int, tags: frozenset[str]) -> bool:
    """A node of `shape` has what a task needs besides slots (GPUs, memory, tags)."""
    return shape[0] >= gpus and (not memory_bytes or shape[1] >= memory_bytes) \
        and tags <= shape[2]


class NodeIndex:
    def __init__(self, nodes: Iterable[tuple[str, float, Shape, float]],
                 farm_sizes: Callable[[], dict[Shape, float]] | None = None):
        """`nodes`: (node id, free slots, shape, slots in all) of every schedulable node.
        `farm_sizes`: the most slots a node of each shape is ever offered, over the whole
        farm (full nodes too); asked only for a task bigger than every node indexed. None:
        the indexed nodes' own."""
        self._farm_sizes = farm_sizes
        self._farm: dict[Shape, float] | None = None  # farm_sizes' answer, asked once
        listed = sorted(nodes, key=lambda n: n[0])
        self.nodes: dict[str, IndexedNode] = {}
        self.heaps: dict[Shape, list[tuple[float, int, str]]] = {}
        self.sizes: dict[Shape, float] = {}  # the most slots a node of the shape has
        for rank, (node_id, free, shape, total) in enumerate(listed):
            self.nodes[node_id] = IndexedNode(node_id, free, rank, shape)
            self.heaps.setdefault(shape, []).append((-free, -rank, node_id))
            self.sizes[shape] = max(total, self.sizes.get(shape, 0.0))
        for heap in self.heaps.values():
            heapq.heapify(heap)
        self.free_total = sum(max(0.0, n.free) for n in self.nodes.values())
        self._fitting: dict[tuple[int, int, frozenset[str]], list[Shape]] = {}

    def fitting_shapes(self, gpus: int, memory_bytes: int, tags: frozenset[str]) -> list[Shape]:
        key = (gpus, memory_bytes, tags)
        found = self._fitting.get(key)
        if found is None:
            found = self._fitting[key] = [
                shape for shape in self.heaps if meets(shape, gpus, memory_bytes, tags)]
        return found

    def need(self, slots: float, gpus: int, memory_bytes: int, tags: frozenset[str],
             shapes: list[Shape]) -> float:
        """The free slots a task asking for `slots` needs of a node: all of them, unless no
        node of the farm that meets its other needs is ever offered as many; then a whole
        one of the largest (only an idle node is offered its whole allowance)."""
        if any(self.sizes[shape] + EPSILON >= slots for shape in shapes):
            return slots  # the usual case, answered from the nodes indexed
        if self._farm is None:
            self._farm = self.sizes if self._farm_sizes is None else self._farm_sizes()
        return min(slots, max((size for shape, size in self._farm.items()
                               if meets(shape, gpus, memory_bytes, tags)), default=0.0))

    def _top(self, shape: Shape) -> tuple[float, int, str] | None:
        heap = self.heaps[shape]
        while heap and -heap[0][0] != self.nodes[heap[0][2]].free:
            heapq.heappop(heap)  # stale: the node took a task since
        return heap[0] if heap else None

    def best(self, slots: float, shapes: list[Shape],
             excluded: Callable[[str], bool]) -> str | None:
        """The node with the most free slots, among `shapes`, with room for `slots`, that
        `excluded` does not rule out (the job's bad nodes, open circuits)."""
        set_aside: list[tuple[Shape, tuple[float, int, str]]] = []
        chosen = None
        while True:
            best_shape, best_entry = None, None
            for shape in shapes:
                entry = self._top(shape)
                if entry is not None and (best_entry is None or entry < best_entry):
                    best_shape, best_entry = shape, entry
            if best_entry is None or -best_entry[0] + EPSILON < slots:
                break  # no node of these shapes has room left
            if not excluded(best_entry[2]):
                chosen = best_entry[2]
                break
            assert best_shape is not None  # found with best_entry
            set_aside.append((best_shape, heapq.heappop(self.heaps[best_shape])))
        for shape, entry in set_aside:
            heapq.heappush(self.heaps[shape], entry)
        return chosen

    def take(self, node_id: str, slots: float) -> None:
        node = self.nodes[node_id]
        self.free_total -= max(0.0, node.free) - max(0.0, node.free - slots)
        node.free -= slots
        heapq.heappush(self.heaps[node.shape], (-node.free, -node.rank, node_id))
