"""The dispatch benchmark's CPU table: each process counted under its kind, once."""

from __future__ import annotations

import subprocess
import sys

from bench import _cpu


def test_a_child_process_cpu_is_seen_under_whoever_reaped_it():
    before = _cpu.snapshot()
    subprocess.run([sys.executable, "-c", "sum(range(3 * 10**7))"], check=True)
    used = _cpu.spent(before, _cpu.snapshot())
    assert used[_cpu.BENCHMARK] > 0.1  # the child's CPU, counted in this process's


def test_processes_are_named_by_what_they_run():
    assert _cpu.kind_of("ray::NodeAgentActor.run_many") == "node agents and their task processes"
    assert _cpu.kind_of("/x/.venv/bin/nx-27017 --data-dir d") == (
        "database (embedded MongoDB-wire server)")
    assert _cpu.kind_of("ray::DashboardAgent") == (
        "Ray's daemons (GCS, raylets, monitors, dashboard)")
    assert _cpu.kind_of("/usr/bin/something") == _cpu.OTHER


def test_a_new_process_is_counted_from_zero_and_a_reaped_one_only_for_the_run():
    seen = _cpu.Seen
    before = {1: seen("agent NodeAgentActor", 2.0, 0.0, 0, 10),
              7: seen("prlimit", 5.0, 0.0, 1, 20), 9: seen("old command", 3.0, 0.0, 1, 30),
              11: seen("ray::IDLE", 1.0, 0.0, 1, 40)}
    # 7 ended during the run, having spent 0.5 s more, and the agent reaped all 5.5 s of it;
    # 9's pid went to a new process, which spent 0.25 s (the agent reaped the old one's 3 s);
    # 3 is new; Ray retitled 11 while it ran a method.
    after = {1: seen("agent NodeAgentActor", 2.125, 5.5 + 3.0, 0, 10),
             9: seen("new command", 0.25, 0.0, 1, 90), 3: seen("rclone", 0.25, 0.0, 1, 91),
             11: seen("ray::ServeReplica:studio-farm:Api.handle_request", 1.5, 0.0, 1, 40)}
    used = _cpu.spent(before, after)
    assert used["node agents and their task processes"] == 0.125 + 0.5
    assert used[_cpu.OTHER] == 0.25
    assert used["object storage (embedded S3 server)"] == 0.25
    assert used["HTTP API, proxy and Serve controller"] == 0.5


def test_a_child_left_to_the_kernel_takes_nothing_from_its_parent():
    seen = _cpu.Seen
    # The raylet ignores SIGCHLD: a worker that stops is reaped by the kernel, and its
    # CPU never reaches the raylet's children time.
    before = {1: seen("raylet", 2.0, 0.0, 0, 10), 7: seen("ray::IDLE", 5.0, 0.0, 1, 20)}
    after = {1: seen("raylet", 2.25, 0.0, 0, 10)}
    used = _cpu.spent(before, after)
    assert used["Ray's daemons (GCS, raylets, monitors, dashboard)"] == 0.25
