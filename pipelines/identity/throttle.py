"""Login throttling per account and per client address, shared by every Api replica.

An attempt *reserves* one failure in each window before the password is checked, and a
successful login gives it back. So only failures count, and a burst of concurrent guesses
cannot slip past the limit while bcrypt runs. Counters are fixed windows (pipelines.ratelimit):
a rolling hour can touch two hourly windows, so an hourly limit of 50 keeps any rolling
hour at 100 failures or fewer (ASVS 2.2.1).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.errors import RateLimited
from pipelines.ratelimit import WindowCounter


@dataclass(frozen=True)
class Limit:
    failures: int
    window_s: int


@dataclass(frozen=True)
class ThrottlePolicy:
    per_account: tuple[Limit, ...] = (Limit(10, 300), Limit(50, 3600))
    # Generous: a whole studio may share one NAT address.
    per_address: tuple[Limit, ...] = (Limit(30, 300),)


@dataclass(frozen=True)
class Reservation:
    slots: tuple[tuple[WindowCounter, str], ...]


def account_key(studio: str, email: str) -> str:
    # Hashed: the counters' ids should not hold people's addresses.
    raw = f"{studio.strip().lower()}\x00{email.strip().lower()}".encode("utf-8", "replace")
    return "acct:" + hashlib.sha256(raw).hexdigest()[:32]


class LoginThrottle:
    def __init__(self, collection: Any, policy: ThrottlePolicy | None = None,
                 clock: Callable[[], float] = time.time):
        self.collection = collection
        self.policy = policy or ThrottlePolicy()
        self.clock = clock

    def _slots(self, studio: str, email: str, address: str) -> list[tuple[WindowCounter, str]]:
        subjects = [(account_key(studio, email), self.policy.per_account),
                    (f"ip:{address}", self.policy.per_address)]
        return [
            (WindowCounter(self.collection, limit.failures, limit.window_s, self.clock),
             f"login-fail:{subject}:{limit.window_s}")
            for subject, limits in subjects for limit in limits
        ]

    async def reserve(self, studio: str, email: str, address: str) -> Reservation:
        """Counts this attempt as a failure up front; raises RateLimited when over a limit."""
        slots = self._slots(studio, email, address)
        taken: list[tuple[WindowCounter, str]] = []
        retry_after = 0
        for counter, key in slots:
            decision = await counter.hit(key)
            taken.append((counter, key))
            if not decision.allowed:
                retry_after = max(retry_after, decision.retry_after_s)
        if retry_after:
            # Refused before any password check: not a failure, so it is not kept.
            await self.release(Reservation(tuple(taken)))
            raise RateLimited("too many failed logins; try again later",
                              code="login_throttled", retry_after_s=retry_after)
        return Reservation(tuple(taken))

    async def release(self, reservation: Reservation) -> None:
        for counter, key in reservation.slots:
            await counter.hit(key, -1)

    async def failures(self, studio: str, email: str, address: str) -> dict[str, int]:
        """Current counts per key (for tests and operators)."""
        return {key: await counter.count(key) for counter, key in self._slots(studio, email,
                                                                                address)}
