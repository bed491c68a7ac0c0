"""A node's scratch folder: `<root>/<ray node id>`, held while its agent lives.

Ray gives a node a new id each time it starts, so every start gets a new folder. Without
care the old ones stay for ever (a test machine had 345 of them, 3 GB): the agent that
takes a folder holds a lock on it, and any folder under the root whose lock nobody holds
belonged to a node that is gone. Its input cache, content-addressed and still good, moves
to the new folder, so a restarted node does not download its scenes again; the rest goes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger("farm.agent")
LOCK = ".held"


class Scratch:
    def __init__(self, root: Path, node_id: str):
        self.root = root
        self.path = root / node_id
        self._lock: int | None = None  # open for the agent's life: the kernel drops it

    def take(self) -> Path:
        """Hold this node's folder and tidy what gone nodes left; returns the folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        # One agent at a time makes and locks its folder and tidies: another, starting
        # alongside, never sees a folder made but not yet locked.
        with open(self.root / ".tidying", "a") as turn:
            fcntl.flock(turn, fcntl.LOCK_EX)
            self.path.mkdir(exist_ok=True)
            self._lock = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            for other in sorted(self.root.iterdir()):
                if other != self.path and other.is_dir() and not other.is_symlink():
                    self._tidy(other)
        return self.path

    def _tidy(self, other: Path) -> None:
        try:
            fd = os.open(other / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError:  # not a scratch folder we can judge
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # a live agent on this machine holds it
            cache, ours = other / "cache", self.path / "cache"
            if cache.is_dir() and not ours.exists():
                cache.rename(ours)
            shutil.rmtree(other, ignore_errors=True)
            log.info("removed a gone node's scratch folder %s", other.name)
        finally:
            os.close(fd)
