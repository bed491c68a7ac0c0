"""Preview job overhead: PreviewMaker.make against the same FFmpeg commands run directly.

Makes a 1080p clip (testsrc2 at 30 fps + a sine tone, x264 ultrafast) in a temporary
folder, records the command lines PreviewMaker runs for it (probe, poster, filmstrip, proxy,
proxy check), then times (a) those exact command lines run one after another with
`subprocess.run`, and (b) `PreviewMaker.make` on the same file, alternating a/b and b/a so
drift in machine load hits both alike. Prints the median wall time of each and b/a
(target <= 1.15), and the same for the CPU time of the child processes, which other load
on a shared machine disturbs less than wall time.

`--farm` times (c), the whole preview job, instead of (b): the real stack with one farm
node; the clip is uploaded as a new version, and the time runs from the upload's answer
(version recorded, preview request filed) until the preview job is `completed`: the
dispatcher's adoption, the lease, the node's download of the clip from storage, the same
FFmpeg commands, the upload of the previews and their publication. Wall time only.

    .venv/bin/python -m bench.preview
    .venv/bin/python -m bench.preview --farm
    .venv/bin/python -m bench.preview --runs 5 --seconds 30 --preset veryfast
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench._harness import Row, add_json_option, write_json
from pipelines.media.previews import PreviewMaker
from pipelines.media.recipes import ProxyOptions

TARGET = 1.15


def make_source(folder: Path, seconds: int) -> Path:
    path = folder / "clip_1080p.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
         str(path)], check=True, timeout=600)
    return path


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_direct(commands: list[list[str]]) -> tuple[float, float]:
    cpu, started = children_cpu_s(), time.perf_counter()
    for argv in commands:
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=True)
    return time.perf_counter() - started, children_cpu_s() - cpu


def run_maker(loop: asyncio.AbstractEventLoop, maker: PreviewMaker, source: Path,
              workdir: Path) -> tuple[float, float, dict[str, float]]:
    cpu, started = children_cpu_s(), time.perf_counter()
    made = loop.run_until_complete(maker.make(source, workdir, "video"))
    elapsed, used = time.perf_counter() - started, children_cpu_s() - cpu
    shutil.rmtree(workdir)
    return elapsed, used, made.timings


def run_farm(base: str, upload_url: str, headers: dict, clip: bytes) -> float:
    """(c): one upload's preview job, from the upload's answer until it is completed."""
    with httpx.Client(base_url=base, headers=headers, timeout=600) as api:
        asset = api.post("/api/v1/assets", json={"name": "bench clip", "kind": "plate"}).json()
        uploaded = api.post(f"{upload_url}/api/v1/assets/{asset['id']}/file",
                            files={"file": ("clip_1080p.mp4", clip, "video/mp4")})
        uploaded.raise_for_status()
        started = time.perf_counter()
        while True:
            jobs = api.get("/api/v1/jobs", params={"kind": "preview"}).json()["items"]
            job = next((j for j in jobs if (j.get("target") or {}).get("asset_id")
                        == asset["id"]), None)
            if job and job["status"] in ("completed", "failed", "cancelled"):
                elapsed = time.perf_counter() - started
                assert job["status"] == "completed", job
                return elapsed
            time.sleep(0.1)


def main_farm(args) -> None:
    from bench._harness import register, start_stack

    folder = Path(tempfile.mkdtemp(prefix="farm-bench-preview-"))
    loop = asyncio.new_event_loop()
    stack = start_stack(farm_nodes=1, farm_slots=2, simple_upload_limit_bytes=2**30)
    try:
        source = make_source(folder, args.seconds)
        clip = source.read_bytes()
        warm = loop.run_until_complete(PreviewMaker(proxy=ProxyOptions(
            preset=args.preset)).make(source, folder / "warm", "video"))
        headers = register(stack.base_url)
        upload_url = stack.settings.upload_url
        run_farm(stack.base_url, upload_url, headers, clip)  # warm the node's workers
        direct, farm = [], []
        for run in range(args.runs):
            for which in ("a", "c") if run % 2 == 0 else ("c", "a"):
                if which == "a":
                    direct.append(run_direct(warm.commands)[0])
                else:
                    farm.append(run_farm(stack.base_url, upload_url, headers, clip))
        a, c = statistics.median(direct), statistics.median(farm)
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; clip "
              f"{len(clip) / 2**20:.1f} MiB, {args.seconds} s 1080p; 1 farm node x 2 slots")
        print(f"wall time, (a) FFmpeg commands run directly: median {a:6.2f} s  runs "
              f"{_list(direct)}")
        print(f"wall time, (c) preview job through the farm: median {c:6.2f} s  runs "
              f"{_list(farm)}")
        verdict = "ok" if c / a <= TARGET else "OVER TARGET"
        print(f"wall ratio c/a = {c / a:.3f} (target <= {TARGET}) {verdict}")
        write_json(args.json, "preview_farm", [Row(
            f"a {args.seconds} s 1080p clip's whole preview job through the farm "
            f"(median of {args.runs})", "s wall", "the same FFmpeg commands run directly", a,
            "preview job, upload answer to completed", c, better="lower",
            target=f"<= {TARGET}")], details={"direct_s": direct, "farm_s": farm})
    finally:
        stack.stop()
        loop.close()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument("--seconds", type=int, default=30, help="clip length (default 30)")
    parser.add_argument("--preset", default=ProxyOptions().preset, help="x264 preset of the proxy")
    parser.add_argument("--farm", action="store_true",
                        help="time the whole preview job through the farm as (c)")
    add_json_option(parser)
    args = parser.parse_args()
    if args.farm:
        main_farm(args)
        return

    folder = Path(tempfile.mkdtemp(prefix="farm-bench-preview-"))
    loop = asyncio.new_event_loop()
    try:
        source = make_source(folder, args.seconds)
        maker = PreviewMaker(proxy=ProxyOptions(preset=args.preset))
        warm = loop.run_until_complete(maker.make(source, folder / "warm", "video"))
        commands = warm.commands  # the exact argv lists; (a) rewrites the same partial files
        direct: list[tuple[float, float]] = []
        wrapped: list[tuple[float, float]] = []
        steps: list[dict[str, float]] = []
        for run in range(args.runs):
            for which in ("a", "b") if run % 2 == 0 else ("b", "a"):
                if which == "a":
                    direct.append(run_direct(commands))
                else:
                    *measured, timings = run_maker(loop, maker, source, folder / f"run{run}")
                    wrapped.append((measured[0], measured[1]))
                    steps.append(timings)
        report(args, source, warm.probe.as_dict(), commands, direct, wrapped, steps)
    finally:
        loop.close()
        shutil.rmtree(folder, ignore_errors=True)


def report(args, source: Path, probe: dict, commands: list[list[str]],
           direct: list[tuple[float, float]], wrapped: list[tuple[float, float]],
           steps: list[dict[str, float]]) -> None:
    version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True,
                             check=True).stdout.splitlines()[0]
    print(f"{version}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"proxy preset {args.preset}")
    print(f"source: {probe['width']}x{probe['height']} {probe['fps']:g} fps, "
          f"{probe['duration_s']:.1f} s, {probe['frames']} frames, {probe['video_codec']}+"
          f"{probe['audio_codec']}, {source.stat().st_size / 2**20:.1f} MiB")
    print(f"commands per job: {len(commands)} "
          f"({', '.join(os.path.basename(argv[0]) for argv in commands)})")
    for name in ("probe", "poster", "filmstrip", "proxy", "proxy_check"):
        print(f"  {name:<12} median {statistics.median(s[name] for s in steps):6.2f} s")
    rows = []
    for index, what in ((0, "wall"), (1, "CPU")):
        a = statistics.median(run[index] for run in direct)
        b = statistics.median(run[index] for run in wrapped)
        rows.append(Row(f"a {args.seconds} s 1080p clip's previews, {what} time "
                        f"(median of {args.runs})", f"s {what}",
                        "the same FFmpeg commands run directly", a, "PreviewMaker.make", b,
                        better="lower", target=f"<= {TARGET}"))
        print(f"{what} time, (a) FFmpeg commands run directly: median {a:6.2f} s  runs "
              f"{_list([run[index] for run in direct])}")
        print(f"{what} time, (b) PreviewMaker.make:            median {b:6.2f} s  runs "
              f"{_list([run[index] for run in wrapped])}")
        verdict = "ok" if b / a <= TARGET else "OVER TARGET"
        print(f"{what} ratio b/a = {b / a:.3f} (target <= {TARGET}) {verdict}")
    write_json(args.json, "preview", rows, details={
        "steps_median_s": {name: statistics.median(s[name] for s in steps)
                           for name in steps[0]}})


def _list(values: list[float]) -> str:
    return " ".join(f"{value:.2f}" for value in values)


if __name__ == "__main__":
    main()
