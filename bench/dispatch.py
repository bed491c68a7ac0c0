"""Dispatch throughput: N tasks through the job API versus N raw Ray tasks, same cluster,
and versus the machine's own limit: the same N processes spawned by a plain pool of as
many workers as the farm has slots, no Ray, no database.

Both sides run the same work per task (`/bin/true` as a subprocess unless `--command`
says otherwise) on the same two farm nodes, so with `/bin/true` the ratio is the farm's
orchestration cost alone: MongoDB writes, leases, reports, logs. A command that works for
a while shows what that cost leaves of the machine for frames that take time. On two
cores both sides are bound by CPU, so it also prints where each side's CPU went per task,
every process of the machine summed by kind (`bench/_cpu.py`), for the median run.

    .venv/bin/python -m bench.dispatch --tasks 2000
    .venv/bin/python -m bench.dispatch --tasks 400 \
        --command "dd if=/dev/zero of=/dev/null bs=64k count=64000"
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import ray

from bench import _cpu
from bench._harness import Row, Table, add_json_option, start_stack, write_json


@ray.remote(num_cpus=0, resources={"farm": 1})
def raw_task(argv: list[str]) -> int:
    return subprocess.run(argv, check=False, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode


def raw_ray(tasks: int, argv: list[str]) -> float:
    started = time.perf_counter()
    assert sum(ray.get([raw_task.remote(argv) for _ in range(tasks)])) == 0
    return time.perf_counter() - started


def process_pool(tasks: int, workers: int, argv: list[str]) -> float:
    """The machine's limit: the processes alone (threads only wait on them)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        codes = list(pool.map(lambda _: subprocess.run(
            argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ).returncode, range(tasks)))
    assert sum(codes) == 0
    return time.perf_counter() - started


def td_headers(base: str) -> dict[str, str]:
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    admin = httpx.post(f"{base}/api/v1/auth/register", json={
        "studio_name": slug, "studio_slug": slug, "email": f"a@{slug}.example", "name": "A",
        "password": "benchmark password"}).json()
    return {"Authorization": f"Bearer {admin['access_token']}"}


def through_farm(base: str, headers: dict, tasks: int, argv: list[str]) -> float:
    """Submit one job of `tasks` chunks and poll it (one connection, 5 times a second: the
    poller shares the two cores with the farm, so it must cost next to nothing)."""
    body = {"kind": "command", "frames": f"1-{tasks}", "chunk_size": 1,
            "command": argv, "max_attempts": 1}
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


def median(runs: list[float]) -> float:
    return sorted(runs)[len(runs) // 2]


def measured(run, repeat: int) -> tuple[list[float], Counter[str]]:
    """`repeat` runs' times, and the CPU by kind of process of the median one."""
    times, used = [], []
    for _ in range(repeat):
        before = _cpu.snapshot()
        times.append(run())
        used.append(_cpu.spent(before, _cpu.snapshot()))
    return times, used[times.index(median(times))]


def cpu_table(raw: Counter[str], farm: Counter[str], tasks: int) -> Table:
    kinds = sorted(set(raw) | set(farm), key=lambda kind: -farm[kind] - raw[kind])

    def ms(cpu_s: float) -> str:
        return f"{cpu_s * 1000 / tasks:.2f}"

    return Table("CPU per task in ms, every process on the machine by kind, median runs",
                 ["processes", "raw Ray tasks", "farm job API"],
                 [[kind, ms(raw[kind]), ms(farm[kind])] for kind in kinds]
                 + [["all", ms(sum(raw.values())), ms(sum(farm.values()))]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--command", default="/bin/true",
                        help="what each task runs, on every side (split like a shell would)")
    parser.add_argument("--slots", type=int, default=4, help="farm slots per node")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (median)")
    parser.add_argument("--ahead", type=float, default=None,
                        help="FARM_DISPATCH_AHEAD (default: the product's default)")
    add_json_option(parser)
    args = parser.parse_args()
    argv = shlex.split(args.command)
    stack = start_stack(farm_nodes=2, farm_slots=args.slots,
                        **({} if args.ahead is None else {"dispatch_ahead": args.ahead}))
    try:
        headers = td_headers(stack.base_url)
        # Ray starts a worker per slot on demand and stops idle ones within seconds: the
        # first run pays for starting them, the next ones run on warm workers. Both shown;
        # the ratio is taken against warm workers, the farm's agents being long-lived.
        cold_s = raw_ray(args.tasks, argv)
        raw_runs, raw_cpu = measured(lambda: raw_ray(args.tasks, argv), args.repeat)
        through_farm(stack.base_url, headers, 20, argv)
        farm_runs, farm_cpu = measured(
            lambda: through_farm(stack.base_url, headers, args.tasks, argv), args.repeat)
        pool_runs = [process_pool(args.tasks, 2 * args.slots, argv)
                     for _ in range(args.repeat)]
        raw_s, farm_s, pool_s = median(raw_runs), median(farm_runs), median(pool_runs)

        def runs(values: list[float]) -> str:
            return ", ".join(f"{value:.2f}" for value in values)

        print(f"{args.tasks} tasks of `{args.command}` on 2 farm nodes x {args.slots} slots, "
              f"median of {args.repeat} runs")
        print(f"raw Ray, first run: {cold_s:6.2f} s  {args.tasks / cold_s:7.1f} tasks/s "
              "(workers starting)")
        print(f"raw Ray tasks:      {raw_s:6.2f} s  {args.tasks / raw_s:7.1f} tasks/s "
              f"(runs {runs(raw_runs)})")
        print(f"farm job API:       {farm_s:6.2f} s  {args.tasks / farm_s:7.1f} tasks/s "
              f"(runs {runs(farm_runs)})")
        print(f"process pool:       {pool_s:6.2f} s  {args.tasks / pool_s:7.1f} tasks/s "
              f"({2 * args.slots} workers, no Ray, no database)")
        print(f"ratio farm/raw:       {raw_s / farm_s:.2f}  (target >= 0.8)")
        print(f"ratio farm/raw first: {cold_s / farm_s:.2f}")
        print(f"ratio farm/pool:      {pool_s / farm_s:.2f}  (how close to the machine's limit)")
        cpu = cpu_table(raw_cpu, farm_cpu, args.tasks)
        print(f"{cpu.title}:")
        for row in [cpu.columns, *cpu.rows]:
            print(f"  {row[0]:<60} {row[1]:>14} {row[2]:>14}")
        write_json(args.json, "dispatch", [Row(
            f"{args.tasks} `{args.command}` tasks on 2 farm nodes x {args.slots} slots",
            "tasks/s", "raw Ray tasks", args.tasks / raw_s, "farm job API",
            args.tasks / farm_s, target=">= 0.8"), Row(
            f"{args.tasks} `{args.command}` tasks, {2 * args.slots} workers", "tasks/s",
            "process pool", args.tasks / pool_s, "farm job API", args.tasks / farm_s)],
            tables=[cpu],
            details={"raw_s": raw_s, "farm_s": farm_s, "pool_s": pool_s, "raw_first_s": cold_s,
                     "raw_runs": raw_runs, "farm_runs": farm_runs, "pool_runs": pool_runs,
                     "raw_cpu_s": dict(raw_cpu), "farm_cpu_s": dict(farm_cpu)})
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
