"""A job's tasks counted by layer and state, kept up to date as the dispatcher moves them.

A full count (`FarmStore.recount`) reads every task of the job; a busy farm cannot afford
one per job every round. The dispatcher's own hot-path moves (leased, started, succeeded)
are written with a state fence and their modified counts checked, so it knows each move
exactly and applies it here instead. Anything it does not know exactly (a failure, a lost
node, a steer from the API, a partly held batch) drops the tally: the next refresh counts
from the database again (see `JobTracker`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipelines.farm.control.eta import LayerTally
from pipelines.farm.models import TaskState


@dataclass
class _Wall:
    """Run times of a layer's succeeded tasks: their count, sum and sum of squares."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, seconds: float) -> None:
        self.n, self.total, self.squares = self.n + 1, self.total + seconds, \
            self.squares + seconds * seconds

    def mean_sd(self) -> tuple[float | None, float | None]:
        if not self.n:
            return None, None
        mean = self.total / self.n
        return mean, math.sqrt(max(0.0, self.squares / self.n - mean * mean))


@dataclass
class JobTally:
    counted_s: float = 0.0  # when the database last counted the job's tasks
    layers: dict[str, Counter] = field(default_factory=dict)
    walls: dict[str, _Wall] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]], counted_s: float = 0.0) -> JobTally:
        """From `FarmStore.recount`'s rows (layer, state, n, and the mean and deviation of
        the state's run times, the succeeded ones being the layer's)."""
        tally = cls(counted_s)
        for row in rows:
            tally.layers.setdefault(row["layer"], Counter())[row["state"]] += row["n"]
            if row["state"] == TaskState.SUCCEEDED.value and row["mean_s"] is not None:
                mean, sd, n = row["mean_s"], row["sd_s"] or 0.0, row["n"]
                tally.walls[row["layer"]] = _Wall(n, mean * n, (sd * sd + mean * mean) * n)
        return tally

    def move(self, layer: str, was: str, now: str, wall_s: float | None = None) -> None:
        """One task of `layer` went from state `was` to `now` (its run time, if it
        succeeded)."""
        counts = self.layers.setdefault(layer, Counter())
        counts[was] -= 1
        counts[now] += 1
        if now == TaskState.SUCCEEDED.value and wall_s is not None:
            self.walls.setdefault(layer, _Wall()).add(float(wall_s))

    def counts(self) -> Counter:
        total: Counter = Counter()
        for counts in self.layers.values():
            total.update(counts)
        return +total  # states with none left out, as a recount leaves them

    def layer_tallies(self) -> dict[str, LayerTally]:
        return {layer: LayerTally(+counts, *self.walls.get(layer, _Wall()).mean_sd())
                for layer, counts in self.layers.items()}
