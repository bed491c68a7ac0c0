"""Readiness: each dependency's state and latency, checked concurrently with a timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pipelines.errors import DependencyUnavailable, FarmError

Check = Callable[[float], Awaitable[float | None]]


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict:
        out: dict = {"status": "ok" if self.ok else "down", "latency_ms": round(self.latency_ms, 2)}
        if self.error:
            out["error"] = self.error
        return out


class Readiness:
    """Runs named checks; a check raises (ideally a FarmError) when its dependency is down."""

    def __init__(self, checks: dict[str, Check], timeout_s: float):
        self.checks = checks
        self.timeout_s = timeout_s

    async def _run_one(self, name: str, check: Check) -> CheckResult:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(check(self.timeout_s), self.timeout_s)
            return CheckResult(name, True, (time.perf_counter() - started) * 1000)
        except TimeoutError:
            error = f"no answer within {self.timeout_s:g}s"
        except FarmError as exc:
            error = exc.message  # domain messages are written to be safe to show
        except Exception as exc:  # noqa: BLE001 - a probe must never raise
            error = type(exc).__name__
        return CheckResult(name, False, (time.perf_counter() - started) * 1000, error)

    async def run(self) -> tuple[bool, dict[str, dict]]:
        results = await asyncio.gather(*(self._run_one(n, c) for n, c in self.checks.items()))
        return all(r.ok for r in results), {r.name: r.as_dict() for r in results}


class ExecutableCheck:
    """`<tool> -version` runs and exits 0; a success is trusted for `cache_s`."""

    def __init__(self, path: str, cache_s: float = 10.0):
        self.path = path
        self.cache_s = cache_s
        self._ok_until = 0.0

    async def __call__(self, timeout_s: float) -> float | None:
        if time.monotonic() < self._ok_until:
            return None
        try:
            proc = await asyncio.create_subprocess_exec(
                self.path, "-version", stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            raise DependencyUnavailable(f"{self.path} cannot be run") from exc
        try:
            code = await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            proc.kill()
            raise
        if code != 0:
            raise DependencyUnavailable(f"{self.path} -version exited {code}")
        self._ok_until = time.monotonic() + self.cache_s
        return None
