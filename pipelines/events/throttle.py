"""Throttles for high-rate producers: progress events and per-socket client messages."""

from __future__ import annotations

import time
from collections.abc import Callable


class ProgressThrottle:
    """At most one progress event per key (a job, a task) per interval.

    The final report of a key (100 %, or a transition) always passes and forgets the key,
    so a throttled producer never leaves a stale last value behind.
    """

    def __init__(self, interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, float] = {}

    def allow(self, key: str, *, final: bool = False) -> bool:
        if final:
            self._last.pop(key, None)
            return True
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        self._last[key] = now
        return True


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; one message costs one token."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def retry_after_s(self) -> float:
        return max(0.0, (1 - self.tokens) / self.rate)
