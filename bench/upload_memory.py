"""Upload memory and throughput: the API never holds a file, whatever its size.

Writes one file straight to the S3 server with the minio client (the baseline), then
uploads it through the proxied-parts path and the simple path (limit raised for the run)
while sampling the RSS of every process under this one (the upload gateway, Ray's proxy
and replicas included). Prints peak RSS growth per process and throughput ratios.

By default the bytes go to the upload gateway, as clients are told to send them
(`proxy_part_url_template`); `--via api` sends them through the Serve proxy instead.

    .venv/bin/python -m bench.upload_memory --size-mib 2048
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from minio import Minio

from bench._harness import Row, add_json_option, register, start_stack, write_json
from tests.support.media import make_mp4

MIB = 1024 * 1024


def _processes(root: int) -> dict[int, str]:
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children[int(stat.read_text().rsplit(")", 1)[1].split()[1])].append(
                int(stat.parent.name))
        except (OSError, IndexError):
            continue
    found, todo = {}, [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            try:
                name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            found[pid] = name.rsplit("/", 1)[-1][:40]
            todo.append(pid)
    return found


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler:
    """Peak RSS growth over the baseline, per process, sampled every 50 ms."""

    def __init__(self) -> None:
        self.names = _processes(os.getpid())
        self.base = {pid: _rss(pid) for pid in self.names}
        self.peak = dict(self.base)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for pid in self.names:
                self.peak[pid] = max(self.peak[pid], _rss(pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def growth(self) -> list[tuple[str, int, int]]:
        rows = [(self.names[p], p, self.peak[p] - self.base[p]) for p in self.names]
        return sorted(rows, key=lambda row: -row[2])


def make_file(path: Path, size: int) -> Path:
    head = make_mp4(path.with_suffix(".head.mp4")).read_bytes()
    with open(path, "wb") as out:
        out.write(head)
        left = size - len(head)
        while left > 0:
            out.write(os.urandom(min(left, 64 * MIB)))
            left -= 64 * MIB
    return path


def upload_proxied(base: str, headers: dict, asset: str, path: Path, parallel: int,
                   via_gateway: bool) -> None:
    """Parts sent `parallel` at a time, as an upload client would."""
    size = path.stat().st_size
    with httpx.Client(base_url=base, headers=headers, timeout=600) as http:
        session = http.post(f"/api/v1/assets/{asset}/uploads",
                            json={"filename": path.name, "size": size}).json()
        template = (session["proxy_part_url_template"] if via_gateway
                    else f"{base}/api/v1/uploads/{session['id']}/parts/{{part}}")

        def send(number: int) -> None:
            with open(path, "rb") as source:
                source.seek((number - 1) * session["part_size"])
                part = source.read(session["part_size"])
            http.put(template.replace("{part}", str(number)), content=part,
                     headers={"Content-Type": "application/octet-stream"}).raise_for_status()

        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(send, range(1, session["part_count"] + 1)))
        http.post(f"/api/v1/uploads/{session['id']}/complete").raise_for_status()


def upload_simple(base: str, headers: dict, asset: str, path: Path) -> None:
    with open(path, "rb") as source, httpx.Client(base_url=base, headers=headers,
                                                  timeout=600) as http:
        http.post(f"/api/v1/assets/{asset}/file",
                  files={"file": (path.name, source, "video/mp4")}).raise_for_status()


def upload_direct(stack, path: Path) -> None:
    s = stack.settings
    client = Minio(s.s3_endpoint, s.s3_access_key.get_secret_value(),
                   s.s3_secret_key.get_secret_value(), secure=False, region=s.s3_region)
    client.fput_object(s.s3_bucket, f"bench/{path.name}", str(path),
                       part_size=s.upload_part_size_bytes, num_parallel_uploads=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--part-mib", type=int, default=16)
    parser.add_argument("--parallel", type=int, default=4, help="proxied parts in flight")
    parser.add_argument("--via", choices=("gateway", "api"), default="gateway",
                        help="where the bytes go: the upload gateway or the Serve proxy")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat all three, interleaved; report medians (busy machines)")
    add_json_option(parser)
    args = parser.parse_args()
    size, part = args.size_mib * MIB, args.part_mib * MIB
    stack = start_stack(upload_part_size_bytes=part, simple_upload_limit_bytes=size + MIB,
                        max_upload_bytes=size + MIB,
                        studio_quota_bytes=size * (2 * args.rounds + 2))
    try:
        work = Path(stack.settings.data_dir) / "bench"
        work.mkdir()
        path = make_file(work / "plate.mp4", size)
        results = measure(stack, path, args)
        report(results, size, part, args.parallel)
        write_json(args.json, "upload_memory", rows(results, size, part, args.parallel),
                   details={"size_mib": args.size_mib, "part_mib": args.part_mib,
                            "parallel": args.parallel, "via": args.via})
    finally:
        stack.stop()
        shutil.rmtree(stack.settings.data_dir, ignore_errors=True)  # GiBs of objects


def measure(stack, path: Path, args: argparse.Namespace) -> dict[str, tuple[list, dict]]:
    """Seconds per round and the largest peak RSS growth per process, for each way in."""
    headers = register(stack.base_url)
    gateway = args.via == "gateway"
    bytes_base = stack.settings.upload_url if gateway else stack.base_url
    runs = {
        "direct (minio client)": lambda _: upload_direct(stack, path),
        f"proxied parts via {args.via}": lambda asset: upload_proxied(
            stack.base_url, headers, asset, path, args.parallel, gateway),
        f"simple via {args.via}": lambda asset: upload_simple(
            bytes_base, headers, asset, path),
    }
    results: dict[str, tuple[list, dict]] = {name: ([], {}) for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            asset = httpx.post(f"{stack.base_url}/api/v1/assets", headers=headers,
                               json={"name": name, "kind": "plate"}).json()["id"]
            with RssSampler() as sampler:
                started = time.perf_counter()
                run(asset)
                results[name][0].append(time.perf_counter() - started)
            for proc, pid, grew in sampler.growth():
                peaks = results[name][1]
                peaks[(proc, pid)] = max(grew, peaks.get((proc, pid), 0))
    return results


def report(results: dict, size: int, part: int, parallel: int) -> None:
    direct = results["direct (minio client)"][0]
    print(f"file {size / MIB:.0f} MiB, part size {part / MIB:.0f} MiB, {parallel} proxied "
          f"parts in flight; target: peak growth <= 2 x part size per concurrent part "
          f"(proxied {2 * part * parallel / MIB:.0f} MiB, simple {2 * part / MIB:.0f} MiB) "
          "per process, throughput >= 0.7 of direct")
    if len(direct) > 1:
        print(f"{len(direct)} rounds, interleaved; times are medians, ratios of medians; "
              "per-round ratios compare with the direct run of the same round")
    for name, (seconds, peaks) in results.items():
        middle = statistics.median(seconds)
        print(f"\n{name}: {middle:.1f} s, {size / MIB / middle:.0f} MiB/s, ratio to direct "
              f"{statistics.median(direct) / middle:.2f}")
        if len(seconds) > 1:
            print("   per round: " + ", ".join(
                f"{s:.1f} s ({d / s:.2f})" for s, d in zip(seconds, direct, strict=True)))
        for (proc, pid), grew in sorted(peaks.items(), key=lambda item: -item[1])[:5]:
            print(f"   peak RSS growth {grew / MIB:8.1f} MiB  {proc} (pid {pid})")


# The embedded S3 server (rclone) and database (nx-27017, a Python process) are not ours.
NOT_OURS = {"rclone", "python"}


def rows(results: dict, size: int, part: int, parallel: int) -> list[Row]:
    """Throughput of each way against the direct upload; the largest per-process peak RSS
    growth against the bound the design allows (2 x part size per part in flight)."""
    direct_s = statistics.median(results["direct (minio client)"][0])
    out = []
    for name, (seconds, peaks) in results.items():
        if name.startswith("direct"):
            continue
        middle = statistics.median(seconds)
        out.append(Row(f"{size / MIB:.0f} MiB upload, {name}: throughput", "MiB/s",
                       "minio client straight to storage", size / MIB / direct_s, name,
                       size / MIB / middle, target=">= 0.7"))
        bound = 2 * part * (parallel if name.startswith("proxied") else 1)
        ours = {key: grew for key, grew in peaks.items() if key[0] not in NOT_OURS}
        (proc, _), grew = max(ours.items(), key=lambda item: item[1])
        out.append(Row(f"{name}: largest peak RSS growth of one farm process ({proc})", "MiB",
                       "bound: 2 x part size per part in flight", bound / MIB, name,
                       grew / MIB, better="lower", target="<= 1"))
    return out


if __name__ == "__main__":
    main()
