"""Stops a process's tool groups when that process dies, however it dies.

Tools run in their own sessions, so that a cancel or a timeout can stop a whole tree.
The flip side: a node agent that dies (its worker killed, its raylet lost) would leave
its tasks running, and the dispatcher would run them again on another node: twice, for
a command that is not safe to repeat. The reaper is a small process holding the read end
of a pipe from its owner. It learns each group as it starts and as it ends; when the pipe
closes (the owner has gone, since only the owner holds the write end), it kills the
groups still listed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

# Run with `python -S -c`: no site packages to import, so it starts in milliseconds.
_REAPER = """
import os, signal, sys
groups = set()
for line in sys.stdin:
    sign, pgid = line[0], int(line[1:])
    (groups.add if sign == "+" else groups.discard)(pgid)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class Reaper:
    """The owner's side: `watch` a group when it starts, `forget` it once it has ended."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _REAPER], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)  # its own session: not killed with ours
        assert self._proc.stdin is not None
        self._fd = self._proc.stdin.fileno()

    def _send(self, line: str) -> None:
        # A few bytes into a pipe the reaper drains at once: never blocks in practice. A
        # reaper gone (killed by hand) only costs this protection, never the task.
        with contextlib.suppress(OSError):
            os.write(self._fd, line.encode())

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")


_reaper: Reaper | None = None


def guard_tool_groups() -> None:
    """From now on, this process's tool groups die with it (node agents call this)."""
    global _reaper
    if _reaper is None:
        _reaper = Reaper()


def watch(pgid: int) -> None:
    if _reaper is not None:
        _reaper.watch(pgid)


def forget(pgid: int) -> None:
    if _reaper is not None:
        _reaper.forget(pgid)
