"""The farm at studio scale, simulated: the scheduling policy alone, and the real Dispatcher
on the embedded database with simulated nodes, at 1,000 and 10,000 nodes of 8 slots and
100,000 and 1,000,000 queued tasks over many studios and jobs.

    .venv/bin/python -m bench.farm_scale            # the whole table (several minutes)
    .venv/bin/python -m bench.farm_scale --quick    # the small sizes only

Each size runs in a child process of its own, so its peak memory is its own. The policy
runs side by side with the plain policy it replaced (tests/support/reference_scheduler.py)
where that one finishes in reasonable time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench._harness import Row, add_json_option, write_json
from pipelines.farm.control.ready_queue import ReadyQueue
from pipelines.farm.control.scheduler import NodeView, Scheduler, TaskView, node_index

SLOTS = 8
STUDIOS = 40
TASKS_PER_JOB = 1000
# Node shapes of a mixed farm: (GPUs, memory GiB, tags); a few shapes, many nodes each.
SHAPES = [(0, 64, ("linux",)), (0, 128, ("linux",)), (0, 256, ("linux", "houdini")),
          (1, 128, ("linux", "cuda")), (2, 256, ("linux", "cuda")), (0, 64, ("windows",))]
GIB = 1 << 30


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def farm(nodes: int) -> list[NodeView]:
    rng = random.Random(nodes)
    out = []
    for i in range(nodes):
        gpus, memory, tags = SHAPES[rng.randrange(len(SHAPES))]
        out.append(NodeView(f"node-{i:05d}", SLOTS, 0.0, gpus, memory * GIB, frozenset(tags)))
    return out


def job_specs(tasks: int) -> list[dict]:
    """Jobs of TASKS_PER_JOB tasks over STUDIOS studios, three priorities, some needing GPUs
    or Houdini or more memory, some with a bad node."""
    rng = random.Random(tasks)
    jobs = []
    for j in range(max(1, tasks // TASKS_PER_JOB)):
        need = rng.choice([(0, 0, ()), (0, 0, ()), (0, 0, ()), (0, 96, ()), (1, 0, ("cuda",)),
                           (0, 0, ("houdini",))])
        jobs.append({"job_id": f"job-{j:05d}", "studio_id": f"studio-{rng.randrange(STUDIOS):02d}",
                     "priority": rng.choice([30, 50, 50, 70]), "created_s": float(j),
                     "slots": rng.choice([1.0, 1.0, 2.0]), "gpus": need[0],
                     "memory_bytes": need[1] * GIB, "tags": frozenset(need[2]),
                     "bad_nodes": frozenset({f"node-{rng.randrange(100):05d}"})
                     if rng.random() < 0.1 else frozenset()})
    return jobs


def task_views(tasks: int) -> list[TaskView]:
    return [TaskView(f"{j['job_id']}-{i:05d}", j["job_id"], j["studio_id"], "render",
                     j["priority"], j["created_s"], i, j["slots"], j["gpus"], j["memory_bytes"],
                     j["tags"], j["bad_nodes"])
            for j in job_specs(tasks) for i in range(TASKS_PER_JOB)]


# -- the policy alone ---------------------------------------------------------------------
def policy(nodes: int, tasks: int, baseline: bool) -> dict:
    """Fill an empty farm from a full queue, then 20 rounds in which 2% of the running
    tasks end and the freed slots are filled again."""
    views, node_views = task_views(tasks), farm(nodes)
    if baseline:
        from tests.support.reference_scheduler import ReferenceScheduler

        started = time.perf_counter()
        plan = ReferenceScheduler().plan(views, [replace(n) for n in node_views], {})
        took = time.perf_counter() - started
        return {"fill_s": took, "placed": len(plan), "decisions_per_s": len(plan) / took,
                "peak_rss_mib": peak_rss_mib()}
    started = time.perf_counter()
    queue = ReadyQueue(views)
    build_s = time.perf_counter() - started
    del views
    scheduler = Scheduler()
    started = time.perf_counter()
    plan = scheduler.place(queue, node_index(node_views), {})
    fill_s = time.perf_counter() - started
    used = {n.node_id: 0.0 for n in node_views}
    running: list[tuple[TaskView, str]] = []
    for task, node_id in plan:
        used[node_id] += task.slots
        running.append((task, node_id))
    rng, rounds, placed = random.Random(1), [], 0
    for _ in range(20):
        rng.shuffle(running)
        ending, running = running[:len(running) // 50], running[len(running) // 50:]
        for task, node_id in ending:
            used[node_id] -= task.slots
        per_studio: dict[str, int] = {}
        for task, _ in running:
            per_studio[task.studio_id] = per_studio.get(task.studio_id, 0) + 1
        views_now = [replace(n, slots_used=used[n.node_id]) for n in node_views]
        started = time.perf_counter()
        again = scheduler.place(queue, node_index(views_now), per_studio)
        rounds.append(time.perf_counter() - started)
        placed += len(again)
        for task, node_id in again:
            used[node_id] += task.slots
            running.append((task, node_id))
    return {"queue_build_s": build_s, "fill_s": fill_s, "placed": len(plan),
            "decisions_per_s": len(plan) / fill_s,
            "round_p50_s": statistics.median(rounds), "round_p99_s": max(rounds),
            "refill_decisions_per_s": placed / sum(rounds), "peak_rss_mib": peak_rss_mib()}


# -- the dispatcher, simulated nodes ---------------------------------------------------------
def dispatcher(nodes: int, tasks: int, seconds: float) -> dict:
    return asyncio.run(_dispatcher(nodes, tasks, seconds))


async def _dispatcher(nodes: int, tasks: int, seconds: float) -> dict:
    from bench._farm_sim import SimulatedFarm

    with tempfile.TemporaryDirectory(prefix="farm-scale-") as data_dir:
        sim = await SimulatedFarm.start(Path(data_dir), farm(nodes), job_specs(tasks))
        try:
            return await sim.run(seconds) | {"peak_rss_mib": peak_rss_mib()}
        finally:
            await sim.stop()


# -- the table ------------------------------------------------------------------------------
def child(part: str, nodes: int, tasks: int, **extra) -> dict | None:
    argv = [sys.executable, "-m", "bench.farm_scale", "--child", part, "--nodes", str(nodes),
            "--tasks", str(tasks), *[a for k, v in extra.items() for a in (f"--{k}", str(v))]]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smaller sizes only")
    parser.add_argument("--seconds", type=float, default=40.0,
                        help="how long each simulated dispatcher runs")
    parser.add_argument("--child", choices=["policy", "baseline", "dispatcher"])
    parser.add_argument("--nodes", type=int)
    parser.add_argument("--tasks", type=int)
    add_json_option(parser)
    args = parser.parse_args()
    if args.child:
        result = (policy(args.nodes, args.tasks, args.child == "baseline")
                  if args.child != "dispatcher" else
                  dispatcher(args.nodes, args.tasks, args.seconds))
        print(json.dumps(result))
        return
    sizes = [(1_000, 100_000)] + ([] if args.quick else [(10_000, 1_000_000)])
    rows = []
    print(f"policy alone: nodes x {SLOTS} slots, queued tasks over {STUDIOS} studios "
          f"in jobs of {TASKS_PER_JOB}")
    print(f"{'nodes':>7} {'tasks':>9} | {'policy':<10} {'fill s':>7} {'placed':>7} "
          f"{'decisions/s':>12} {'round p50':>10} {'round p99':>10} {'peak MiB':>9}")
    for nodes, tasks in [(100, 1_000), (1_000, 8_000), *sizes]:
        for part in ("baseline", "policy"):
            if part == "baseline" and nodes * tasks > 1_000 * 100_000:
                print(f"{nodes:>7} {tasks:>9} | {'plain':<10} not run: it scans every node "
                      f"for each of {nodes * SLOTS:,} placements")
                continue
            got = child(part, nodes, tasks)
            if got is None:
                continue
            name = "plain" if part == "baseline" else "indexed"
            p50, p99 = got.get("round_p50_s"), got.get("round_p99_s")
            print(f"{nodes:>7} {tasks:>9} | {name:<10} {got['fill_s']:7.2f} {got['placed']:>7} "
                  f"{got['decisions_per_s']:12,.0f} "
                  f"{'' if p50 is None else f'{p50 * 1000:8.1f}ms':>10} "
                  f"{'' if p99 is None else f'{p99 * 1000:8.1f}ms':>10} "
                  f"{got['peak_rss_mib']:9.0f}")
            if part == "policy":
                rows.append(Row(f"policy, {nodes:,} nodes x {tasks:,} tasks", "decisions/s",
                                "target", 20_000, "indexed", got["decisions_per_s"],
                                target=">= 1"))
    print()
    print(f"dispatcher: real Dispatcher and store on the embedded database, simulated nodes "
          f"(tasks of 20-60 s), {args.seconds:.0f} s each")
    print(f"{'nodes':>7} {'tasks':>9} | {'fill s':>7} {'running':>8} {'rounds':>6} "
          f"{'round p50':>10} {'round p99':>10} {'placed/s':>9} {'db cmds/task':>12} "
          f"{'peak MiB':>9}")
    for nodes, tasks in sizes:
        got = child("dispatcher", nodes, tasks, seconds=args.seconds)
        if got is None:
            continue
        print(f"{nodes:>7} {tasks:>9} | {got['fill_s']:7.2f} {got['running']:>8} "
              f"{got['rounds']:>6} "
              f"{got['round_p50_s'] * 1000:8.1f}ms {got['round_p99_s'] * 1000:8.1f}ms "
              f"{got['placed_per_s']:9.0f} {got['commands_per_task']:12.2f} "
              f"{got['peak_rss_mib']:9.0f}")
        print(f"{'':>19}   of {got['slots']:,.0f} slots; inserting the queue took "
              f"{got['insert_s']:.0f} s; first round {got['first_round_s']:.2f} s; "
              f"{got['aggregations_per_s']:.1f} aggregations/s (job counts)")
    write_json(args.json, "farm_scale", rows)


if __name__ == "__main__":
    main()
