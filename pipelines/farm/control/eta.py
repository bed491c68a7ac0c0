"""How long a job has left, from how long its finished tasks took.

Per layer, the tasks left (running ones count half) times the mean run time of the layer's
succeeded tasks, spread over the tasks the job runs at once now. The range is two standard
deviations of that sum (tasks taken as independent), so it narrows as tasks finish. No
estimate is better than a wrong one: a layer with work left but fewer than MIN_FINISHED
succeeded tasks, or a job with nothing running (queued behind others, paused), has none.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pipelines.farm.models import ACTIVE, TaskState

MIN_FINISHED = 3
LEFT = ("ready", "waiting", "paused", *ACTIVE)


@dataclass(frozen=True)
class LayerTally:
    counts: Counter  # the layer's tasks by state
    mean_s: float | None = None  # run time of its succeeded tasks
    sd_s: float | None = None


def _work_left(tally: LayerTally) -> tuple[float, float, int] | None:
    """(seconds of work left, its variance, tasks running); None: too few finished."""
    left = sum(tally.counts[s] for s in LEFT)
    running = sum(tally.counts[s] for s in ACTIVE)
    if left == 0:
        return 0.0, 0.0, 0
    if tally.counts[TaskState.SUCCEEDED.value] < MIN_FINISHED or tally.mean_s is None:
        return None
    tasks = left - running / 2
    return tasks * tally.mean_s, tasks * (tally.sd_s or 0.0) ** 2, running


def estimate(layers: dict[str, LayerTally]) -> dict[str, Any] | None:
    per_layer: dict[str, float | None] = {}
    work = variance = 0.0
    running = finished = 0
    known = True
    for name, tally in layers.items():
        finished += tally.counts[TaskState.SUCCEEDED.value]
        left = _work_left(tally)
        if left is None:
            per_layer[name], known = None, False
            continue
        layer_work, layer_variance, layer_running = left
        work, variance, running = work + layer_work, variance + layer_variance, \
            running + layer_running
        per_layer[name] = round(layer_work / layer_running, 1) if layer_running else \
            (0.0 if layer_work == 0 else None)
    if not known or (work > 0 and running == 0):
        return {"seconds": None, "low_s": None, "high_s": None, "based_on": finished,
                "layers": per_layer} if any(v is not None for v in per_layer.values()) \
            else None
    seconds = work / running if running else 0.0
    spread = 2 * math.sqrt(variance) / running if running else 0.0
    return {"seconds": round(seconds, 1), "low_s": round(max(0.0, seconds - spread), 1),
            "high_s": round(seconds + spread, 1), "based_on": finished, "layers": per_layer}
