"""Retry, circuit-breaker and bad-node policy: plain classes, tested without Ray."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import StrEnum

from tenacity import wait_exponential_jitter

from pipelines.farm.protocol import FailureClass


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay_s: float = 0.0
    charge_attempt: bool = True


@dataclass(frozen=True)
class _AttemptState:
    """The one field of tenacity's RetryCallState that its wait strategies read."""

    attempt_number: int


class RetryPolicy:
    """Exponential backoff with jitter by failure class (tenacity's wait strategy).

    With jitter no larger than the first delay, each delay is at least the previous one.
    """

    def __init__(self, initial_s: float = 2.0, max_s: float = 300.0, jitter_s: float | None = None):
        self.wait = wait_exponential_jitter(
            multiplier=initial_s, max=max_s, exp_base=2,
            jitter=initial_s / 2 if jitter_s is None else jitter_s,
        )

    def delay(self, attempt: int) -> float:
        return float(self.wait(_AttemptState(attempt)))  # type: ignore[arg-type]

    def decide(self, failure: str, attempt: int, max_attempts: int) -> RetryDecision:
        if failure == FailureClass.NODE_LOST:
            return RetryDecision(retry=True, delay_s=0.0, charge_attempt=False)
        if failure == FailureClass.STORAGE:  # after a pause, for storage to come back
            return RetryDecision(retry=True, delay_s=self.delay(1), charge_attempt=False)
        if failure in (FailureClass.BAD_INPUT, FailureClass.CANCELLED):
            return RetryDecision(retry=False)
        if attempt >= max_attempts:
            return RetryDecision(retry=False)
        return RetryDecision(retry=True, delay_s=self.delay(attempt))


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class _Circuit:
    state: CircuitState = CircuitState.CLOSED
    opened_at: float = 0.0
    trial_in_flight: bool = False
    failed_jobs: set[str] = field(default_factory=set)  # the streak: each job counts once


@dataclass
class CircuitBreakers:
    """closed → open after `threshold` consecutive failures → half-open trial after
    `cooldown_s` (one task at a time) → closed on its success, open again on failure.

    A streak counts each job once: a node that fails several jobs' work in a row is at
    fault, while one broken job (a typo in its command) failing again and again on it is
    the job's own problem, kept away from the node by the job's bad list (`BadNodes`).
    Otherwise one TD's mistake would shut a small farm for everyone."""

    threshold: int = 3
    cooldown_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    circuits: dict[Hashable, _Circuit] = field(default_factory=dict)

    def _get(self, key: Hashable) -> _Circuit:
        return self.circuits.setdefault(key, _Circuit())

    def state(self, key: Hashable) -> CircuitState:
        circuit = self._get(key)
        cooled = self.clock() - circuit.opened_at >= self.cooldown_s
        if circuit.state == CircuitState.OPEN and cooled:
            return CircuitState.HALF_OPEN
        return circuit.state

    def allows(self, key: Hashable) -> bool:
        state = self.state(key)
        circuit = self._get(key)
        if state == CircuitState.CLOSED:
            return True
        return state == CircuitState.HALF_OPEN and not circuit.trial_in_flight

    def on_dispatch(self, key: Hashable) -> None:
        if self.state(key) == CircuitState.HALF_OPEN:
            circuit = self._get(key)
            circuit.state, circuit.trial_in_flight = CircuitState.HALF_OPEN, True

    def allows_task(self, node_id: str, kind: str) -> bool:
        """The node's circuit and its circuit for tasks of `kind` both let one through."""
        return self.allows(node_id) and self.allows((node_id, kind))

    def task_placed(self, node_id: str, kind: str) -> None:
        self.on_dispatch(node_id)
        self.on_dispatch((node_id, kind))

    def release_trial(self, key: Hashable) -> None:
        """The trial task was planned but never sent: let another one through."""
        self._get(key).trial_in_flight = False

    def trial_over(self, node_id: str, kind: str) -> None:
        """A task of `kind` on the node ended, whatever the outcome: if it was a trial, the
        next one may go. A trial killed, cancelled or lost proves nothing either way, and
        must not hold the node shut; a crash reopens the circuit all the same
        (`record_failure` reads the half-open state, not the flag)."""
        for key in (node_id, (node_id, kind)):
            circuit = self.circuits.get(key)
            if circuit is not None:
                circuit.trial_in_flight = False

    def record_success(self, key: Hashable) -> None:
        self.circuits[key] = _Circuit()

    def record_failure(self, key: Hashable, job_id: str) -> bool:
        """Count a failure of `job_id`'s work; True when this failure opened the circuit."""
        circuit = self._get(key)
        if circuit.state == CircuitState.HALF_OPEN or circuit.trial_in_flight:
            circuit.state, circuit.opened_at, circuit.trial_in_flight = (
                CircuitState.OPEN, self.clock(), False)
            return True
        if job_id in circuit.failed_jobs:
            return False
        circuit.failed_jobs.add(job_id)
        if circuit.state == CircuitState.CLOSED and len(circuit.failed_jobs) >= self.threshold:
            circuit.state, circuit.opened_at = CircuitState.OPEN, self.clock()
            return True
        return False


@dataclass
class BadNodes:
    """Per job: a node on which the job failed `threshold` times gets no more of its tasks."""

    threshold: int = 3
    failures: dict[tuple[str, str], int] = field(default_factory=dict)

    def record_failure(self, job_id: str, node_id: str) -> bool:
        """True when this failure puts the node on the job's bad list."""
        key = (job_id, node_id)
        self.failures[key] = self.failures.get(key, 0) + 1
        return self.failures[key] == self.threshold
