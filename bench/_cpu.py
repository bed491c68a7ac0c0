"""Where a benchmark's CPU goes: every process's CPU time from /proc, before and after a
run, summed by what the process is (the database, a node agent, Ray's own daemons, ...).

A process's time includes its reaped children's (a node agent's task processes), so each
task process is counted once, under whoever started it. One that ends during the run is
counted, for the part of its life inside the run, under the parent that reaped it; if
nobody that counts reaped it (Ray's raylet leaves its workers to the kernel), its last
moments are missed, never counted twice.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import NamedTuple

_TICKS_S = os.sysconf("SC_CLK_TCK")

# First match wins: cmdline fragments (Ray names a worker after its actor or task).
KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("node agents and their task processes", ("NodeAgentActor",)),
    ("dispatcher", ("DispatcherActor",)),
    ("database (embedded MongoDB-wire server)", ("nx-27017",)),
    ("object storage (embedded S3 server)", ("rclone",)),
    ("HTTP API, proxy and Serve controller", ("ServeReplica", "ProxyActor", "ServeController")),
    ("event broadcaster", ("Broadcaster",)),
    ("Ray task workers", ("ray::raw_task", "ray::IDLE")),
    ("Ray's daemons (GCS, raylets, monitors, dashboard)",
     ("gcs_server", "raylet", "log_monitor", "dashboard", "monitor.py", "runtime_env")),
)
BENCHMARK = "this benchmark (raw Ray: the driver submitting the tasks)"
OTHER = "everything else"


class Seen(NamedTuple):
    argv: str
    own_s: float  # CPU time of the process itself
    children_s: float  # of its children it has reaped
    parent: int
    born: int  # start time: with the pid, which process this is (Ray retitles its workers)

    @property
    def cpu_s(self) -> float:
        return self.own_s + self.children_s


def snapshot() -> dict[int, Seen]:
    """Every process now, by pid."""
    seen = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat, open(f"/proc/{entry}/cmdline") as cmd:
                fields, argv = stat.read(), cmd.read()
        except OSError:  # gone meanwhile
            continue
        # After the parenthesised name: ppid is the 2nd value, utime stime cutime cstime
        # the 12th to 15th, the start time the 20th.
        values = fields[fields.rindex(")") + 2:].split()
        own, children = (int(values[11]) + int(values[12]), int(values[13]) + int(values[14]))
        argv = BENCHMARK if int(entry) == os.getpid() else argv.replace("\0", " ")
        seen[int(entry)] = Seen(argv, own / _TICKS_S, children / _TICKS_S, int(values[1]),
                                int(values[19]))
    return seen


def kind_of(argv: str) -> str:
    if argv == BENCHMARK:
        return BENCHMARK
    lowered = argv.lower()
    for kind, fragments in KINDS:
        if any(fragment.lower() in lowered for fragment in fragments):
            return kind
    return OTHER


def spent(before: dict[int, Seen], after: dict[int, Seen]) -> Counter[str]:
    """CPU seconds each kind of process used between the two snapshots."""
    used: Counter[str] = Counter()
    for pid, now in after.items():
        then = before.get(pid)
        start = then.cpu_s if then and then.born == now.born else 0.0  # else a reused pid
        used[kind_of(now.argv)] += now.cpu_s - start
    # A child gone meanwhile, if its parent reaped it, took its whole life's CPU into the
    # parent's: the part before the first snapshot is not the run's. A parent that leaves
    # its children to the kernel (Ray's raylet does) took none of it.
    before_gone: Counter[int] = Counter()
    for pid, then in before.items():
        if pid not in after or after[pid].born != then.born:
            before_gone[then.parent] += then.cpu_s
    for parent_pid, cpu_s in before_gone.items():
        parent, earlier = after.get(parent_pid), before.get(parent_pid)
        if parent is not None and earlier is not None and earlier.born == parent.born:
            reaped_s = parent.children_s - earlier.children_s
            used[kind_of(parent.argv)] -= min(cpu_s, max(reaped_s, 0.0))
    return used
