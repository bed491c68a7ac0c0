"""Dispatch throughput: N tasks through the job API versus N raw Ray tasks, same cluster,
and versus the machine's own limit: N `/bin/true` processes spawned by a plain pool of as
many workers as the farm has slots, no Ray, no database.

Both sides run the same work per task (`/bin/true` as a subprocess) on the same two farm
nodes, so the ratio is the farm's orchestration cost: MongoDB writes, leases, reports.

    .venv/bin/python -m bench.dispatch --tasks 2000
"""

from __future__ import annotations

import argparse
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import ray

from bench._harness import Row, add_json_option, start_stack, write_json


@ray.remote(num_cpus=0, resources={"farm": 1})
def true_task() -> int:
    return subprocess.run(["/bin/true"], check=False).returncode


def raw_ray(tasks: int) -> float:
    started = time.perf_counter()
    assert sum(ray.get([true_task.remote() for _ in range(tasks)])) == 0
    return time.perf_counter() - started


def process_pool(tasks: int, workers: int) -> float:
    """The machine's limit: the processes alone (threads only wait on them)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        codes = list(pool.map(lambda _: subprocess.run(["/bin/true"], check=False).returncode,
                              range(tasks)))
    assert sum(codes) == 0
    return time.perf_counter() - started


def td_headers(base: str) -> dict[str, str]:
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    admin = httpx.post(f"{base}/api/v1/auth/register", json={
        "studio_name": slug, "studio_slug": slug, "email": f"a@{slug}.example", "name": "A",
        "password": "benchmark password"}).json()
    return {"Authorization": f"Bearer {admin['access_token']}"}


def through_farm(base: str, headers: dict, tasks: int) -> float:
    """Submit one job of `tasks` chunks and poll it (one connection, 5 times a second: the
    poller shares the two cores with the farm, so it must cost next to nothing)."""
    body = {"kind": "command", "frames": f"1-{tasks}", "chunk_size": 1,
            "command": ["/bin/true"], "max_attempts": 1}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        started = time.perf_counter()
        submitted = client.post("/api/v1/jobs", json=body)
        assert submitted.status_code == 201, submitted.text
        job = submitted.json()
        while True:
            state = client.get(f"/api/v1/jobs/{job['id']}").json()
            if state["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    assert state["status"] == "completed", state
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=4, help="farm slots per node")
    parser.add_argument("--ahead", type=float, default=None,
                        help="FARM_DISPATCH_AHEAD (default: the product's default)")
    add_json_option(parser)
    args = parser.parse_args()
    stack = start_stack(farm_nodes=2, farm_slots=args.slots,
                        **({} if args.ahead is None else {"dispatch_ahead": args.ahead}))
    try:
        headers = td_headers(stack.base_url)
        raw_ray(50)  # warm the workers on both sides
        through_farm(stack.base_url, headers, 20)
        raw_s = raw_ray(args.tasks)
        farm_s = through_farm(stack.base_url, headers, args.tasks)
        pool_s = process_pool(args.tasks, 2 * args.slots)
        print(f"{args.tasks} tasks of /bin/true on 2 farm nodes x {args.slots} slots")
        print(f"raw Ray tasks:   {raw_s:6.2f} s  {args.tasks / raw_s:7.1f} tasks/s")
        print(f"farm job API:    {farm_s:6.2f} s  {args.tasks / farm_s:7.1f} tasks/s")
        print(f"process pool:    {pool_s:6.2f} s  {args.tasks / pool_s:7.1f} tasks/s "
              f"({2 * args.slots} workers, no Ray, no database)")
        print(f"ratio farm/raw:  {raw_s / farm_s:.2f}  (target >= 0.8)")
        print(f"ratio farm/pool: {pool_s / farm_s:.2f}  (how close to the machine's limit)")
        write_json(args.json, "dispatch", [Row(
            f"{args.tasks} `/bin/true` tasks on 2 farm nodes x {args.slots} slots",
            "tasks/s", "raw Ray tasks", args.tasks / raw_s, "farm job API",
            args.tasks / farm_s, target=">= 0.8"), Row(
            f"{args.tasks} `/bin/true` tasks, {2 * args.slots} workers", "tasks/s",
            "process pool", args.tasks / pool_s, "farm job API", args.tasks / farm_s)],
            details={"raw_s": raw_s, "farm_s": farm_s, "pool_s": pool_s})
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
