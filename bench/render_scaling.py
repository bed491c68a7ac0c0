"""Render scaling: the same Blender job on 1 and on 2 farm nodes, frames per second each.

The sample scene (`farm sample-scene`), rendered through the job API with real Blender on
farm nodes of a local Ray cluster. Each side gets a fresh stack and a warm-up job; the
timed job's rate counts from submission to the last chunk's end (the render), and to the
job's completion (with assembly and publishing) for reference.

    .venv/bin/python -m bench.render_scaling --frames 48 --slots 2

Efficiency = 2-node rate / (2 x 1-node rate). Nodes of one machine share its cores: on a
machine with fewer cores than the farm has slots, the figure is bounded by the cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from bench._harness import Row, add_json_option, register, start_stack, write_json
from pipelines.render.sample_scene import write_in_subprocess


@dataclass
class Run:
    nodes: int
    frames: int
    render_s: float
    total_s: float

    @property
    def rate(self) -> float:
        return self.frames / self.render_s


def _post(client: httpx.Client, path: str, **kwargs) -> dict:
    response = client.post(path, **kwargs)
    response.raise_for_status()
    return response.json()


def _job(client: httpx.Client, scene_id: str, frames: int, args: argparse.Namespace) -> dict:
    target = _post(client, "/api/v1/assets", json={"name": "bench render", "kind": "render"})
    return _post(client, "/api/v1/jobs", json={
        "kind": "render", "name": "bench", "frames": f"1-{frames}",
        "chunk_size": args.chunk, "requirements": {"slots": args.task_slots},
        "render": {"scene": {"asset_id": scene_id, "version": 1},
                   "target_asset_id": target["id"], "samples": args.samples}})


def _wait(client: httpx.Client, job_id: str) -> dict:
    while True:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            assert job["status"] == "completed", job
            return job
        time.sleep(0.1)


def _last_render_end(client: httpx.Client, job_id: str) -> float:
    tasks = client.get(f"/api/v1/jobs/{job_id}/tasks", params={"limit": 500}).json()["items"]
    return max(datetime.fromisoformat(t["finished_at"]).timestamp()
               for t in tasks if t["kind"] == "render")


def measure(nodes: int, scene: bytes, args: argparse.Namespace) -> Run:
    stack = start_stack(farm_nodes=nodes, farm_slots=args.slots)
    try:
        headers = register(stack.base_url)
        with httpx.Client(base_url=stack.base_url, headers=headers, timeout=60) as client:
            asset = _post(client, "/api/v1/assets", json={"name": "scene", "kind": "shot"})
            _post(client, f"/api/v1/assets/{asset['id']}/file",
                  files={"file": ("sample.blend", scene, "application/x-blender")})
            _wait(client, _job(client, asset["id"], 2 * args.chunk * nodes, args)["id"])
            started = time.time()
            job = _job(client, asset["id"], args.frames, args)
            _wait(client, job["id"])
            total = time.time() - started
            render = _last_render_end(client, job["id"]) - started
        return Run(nodes, args.frames, render, total)
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--chunk", type=int, default=4, help="frames per render task")
    parser.add_argument("--slots", type=int, default=2, help="farm slots (and CPUs) per node")
    parser.add_argument("--task-slots", type=float, default=1.0,
                        help="slots per render task (Cycles threads = its ceiling)")
    parser.add_argument("--samples", type=int, default=8)
    add_json_option(parser)
    args = parser.parse_args()
    scene_path = Path(tempfile.mkdtemp(prefix="farm-bench-")) / "sample.blend"
    done = write_in_subprocess(str(scene_path), frames=max(48, args.frames))
    assert done.returncode == 0, done.stderr
    scene = scene_path.read_bytes()
    runs = [measure(nodes, scene, args) for nodes in (1, 2)]
    print(f"{args.frames} frames of the sample scene (320x180, {args.samples} samples, "
          f"chunks of {args.chunk}); {args.slots} slots per node, {args.task_slots:g} per "
          f"task; this machine has {os.cpu_count()} cores")
    for run in runs:
        print(f"{run.nodes} farm node{'s' if run.nodes > 1 else ' '}: render {run.render_s:6.2f} s"
              f"  {run.rate:5.2f} frames/s   (job with assembly {run.total_s:6.2f} s)")
    one, two = runs
    print(f"scaling efficiency: {two.rate / (2 * one.rate):.2f}  "
          f"(2-node rate / (2 x 1-node rate))")
    write_json(args.json, "render_scaling", [Row(
        f"{args.frames} Blender frames (320x180, {args.samples} samples), "
        f"{args.slots} slots per node; ratio = scaling efficiency",
        "frames/s", "2 x the 1-node rate", 2 * one.rate, "2 farm nodes", two.rate)],
        details={f"{r.nodes}_nodes": {"render_s": r.render_s, "job_s": r.total_s,
                                     "frames_per_s": r.rate} for r in runs},
        notes=[f"farm nodes share this machine's {os.cpu_count()} cores, which bound "
               "the efficiency when the farm has more slots than the machine has cores"])


if __name__ == "__main__":
    main()
