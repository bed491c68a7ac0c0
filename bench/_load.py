"""Closed-loop HTTP load at fixed concurrency: throughput and latency percentiles."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx


@dataclass
class Load:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]

    def merge(self, other: Load) -> Load:
        return Load(self.requests + other.requests, self.errors + other.errors,
                    self.seconds + other.seconds, self.latencies_ms + other.latencies_ms)

    def summary(self) -> dict:
        return {"req_per_s": round(self.rate, 1), "p50_ms": round(self.percentile(50), 2),
                "p99_ms": round(self.percentile(99), 2), "requests": self.requests,
                "errors": self.errors}


async def closed_loop(base: str, path: str, headers: dict, concurrency: int, warmup_s: float,
                duration_s: float) -> Load:
    """`concurrency` clients in a closed loop; the requests that complete inside the
    timed window count (throughput = completions / window)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors = [0]
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                 timeout=30) as client:
        begin = time.perf_counter() + warmup_s
        end = begin + duration_s

        async def worker() -> None:
            while True:
                started = time.perf_counter()
                if started >= end:
                    return
                try:
                    response = await client.get(path)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                finished = time.perf_counter()
                if begin <= finished <= end:  # completions inside the window
                    if ok:
                        latencies.append((finished - started) * 1000)
                    else:
                        errors[0] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Load(len(latencies), errors[0], duration_s, latencies)
