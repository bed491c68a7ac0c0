"""The ETA's arithmetic, and that it says nothing rather than something wrong."""

from __future__ import annotations

from collections import Counter

import pytest

from pipelines.farm.control.eta import LayerTally, estimate
from pipelines.farm.control.job_tally import JobTally


def layer(mean_s=None, sd_s=None, **states) -> LayerTally:
    return LayerTally(Counter(states), mean_s, sd_s)


def test_tasks_left_times_their_mean_run_time_over_the_tasks_running_now():
    eta = estimate({"render": layer(10.0, 2.0, succeeded=4, running=2, ready=6)})
    # 6 ready + 2 running counted half = 7 tasks x 10 s, two at a time
    assert eta["seconds"] == 35.0 and eta["based_on"] == 4
    spread = 2 * (7 * 2.0 ** 2) ** 0.5 / 2
    assert (eta["low_s"], eta["high_s"]) == (round(35 - spread, 1), round(35 + spread, 1))
    assert eta["layers"] == {"render": 35.0}


def test_no_estimate_until_enough_tasks_finished():
    assert estimate({"render": layer(10.0, 0.0, succeeded=2, running=2, ready=6)}) is None


def test_a_layer_without_data_leaves_the_job_unknown_but_the_others_known():
    eta = estimate({"render": layer(10.0, 0.0, succeeded=3, running=1, ready=1),
                    "comp": layer(waiting=4)})
    assert eta["seconds"] is None and eta["layers"] == {"render": 15.0, "comp": None}


def test_nothing_running_means_no_estimate_and_nothing_left_means_zero():
    assert estimate({"render": layer(10.0, 0.0, succeeded=3, ready=5)}) is None
    done = estimate({"render": layer(10.0, 1.0, succeeded=8)})
    assert (done["seconds"], done["low_s"], done["high_s"]) == (0.0, 0.0, 0.0)


def test_recount_rows_become_counts_and_layer_tallies():
    tally = JobTally.from_rows([
        {"layer": "render", "state": "succeeded", "n": 3, "mean_s": 4.0, "sd_s": 1.0},
        {"layer": "render", "state": "ready", "n": 2, "mean_s": None, "sd_s": None},
        {"layer": "comp", "state": "waiting", "n": 1, "mean_s": None, "sd_s": None}])
    layers = tally.layer_tallies()
    assert tally.counts() == Counter(succeeded=3, ready=2, waiting=1)
    assert layers["render"].counts == Counter(succeeded=3, ready=2)
    assert (layers["render"].mean_s, layers["render"].sd_s) == (pytest.approx(4.0),
                                                                 pytest.approx(1.0))
    assert layers["comp"].mean_s is None


def test_moves_keep_the_counts_and_run_times_a_recount_would_give():
    tally = JobTally.from_rows([
        {"layer": "render", "state": "succeeded", "n": 2, "mean_s": 4.0, "sd_s": 0.0},
        {"layer": "render", "state": "ready", "n": 2, "mean_s": None, "sd_s": None}])
    for _ in range(2):
        tally.move("render", "ready", "leased")
    tally.move("render", "leased", "running")
    tally.move("render", "running", "succeeded", wall_s=7.0)
    tally.move("render", "leased", "succeeded", wall_s=1.0)
    render = tally.layer_tallies()["render"]
    assert tally.counts() == Counter(succeeded=4)  # the states left empty are gone
    assert render.mean_s == pytest.approx(4.0)  # 4, 4, 7 and 1
    assert render.sd_s == pytest.approx((4.5) ** 0.5)  # squares 16+16+49+1 over 4, less 16
