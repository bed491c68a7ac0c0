"""Run every benchmark once and write docs/performance.md from their JSON results.

Each benchmark runs in its own process (each starts and stops its own Ray cluster), with
`--json PATH`; this runner collects the records, times each run and renders one page: the
machine, the date, a table of baseline, ours and ratio per benchmark, and the exact
command that reruns each. `make bench` calls it; the sizes below keep the whole run under
15 minutes on a 2-core machine.

    .venv/bin/python -m bench.all
    .venv/bin/python -m bench.all --only api dispatch --out /tmp/perf.md
    .venv/bin/python -m bench.all --render-only /tmp/farm-bench-results-XXXX
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Bench:
    name: str
    argv: list[str]  # after `python -m`
    size: str  # what `make bench` runs, said in the table
    timeout_s: int = 1200  # a safety net only: a loaded machine slows every start

    @property
    def command(self) -> str:
        return ".venv/bin/python -m " + " ".join(self.argv)


BENCHMARKS = [
    Bench("api", ["bench.api"], "default: 16 clients, 6 s per endpoint; uvicorn + "
          "5 Serve variants"),
    Bench("dispatch", ["bench.dispatch", "--tasks", "2000"], "default: 2,000 tasks"),
    Bench("node_agent", ["bench.node_agent", "--tasks", "1000"], "default: 1,000 tasks"),
    Bench("farm_scale", ["bench.farm_scale", "--quick"], "the small sizes; all: no --quick"),
    Bench("preview", ["bench.preview", "--runs", "2"],
          "quick: 2 runs of each side (default 3), 30 s clip"),
    Bench("preview_farm", ["bench.preview", "--farm", "--runs", "1", "--seconds", "10"],
          "quick: 1 run, 10 s clip (defaults 3, 30 s)"),
    Bench("render_scaling", ["bench.render_scaling"], "default: 48 frames"),
    Bench("upload_memory", ["bench.upload_memory", "--size-mib", "1024"],
          "quick: 1 GiB file (default 2 GiB)"),
    Bench("client_upload", ["bench.client_upload", "--size-mib", "1024"],
          "default: 1 GiB file"),
    Bench("ws_fanout", ["bench.ws_fanout", "--events", "50"],
          "quick: 100 and 500 sockets, 50 events (default 100)"),
]


def run_one(bench: Bench, results: Path) -> dict:
    """Run one benchmark, its output streamed to the terminal and to a log file."""
    out, log = results / f"{bench.name}.json", results / f"{bench.name}.log"
    argv = [sys.executable, "-m", *bench.argv, "--json", str(out)]
    print(f"\n=== {bench.name}: {bench.command}", flush=True)
    started = time.perf_counter()
    with open(log, "wb") as sink:
        child = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        assert child.stdout is not None
        deadline = time.monotonic() + bench.timeout_s
        with _kill_after(child, bench.timeout_s):
            for line in child.stdout:
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
                sink.write(line)
        rc = child.wait()
    wall = time.perf_counter() - started
    status = "ok" if rc == 0 and out.exists() else (
        "timed out" if time.monotonic() >= deadline else f"failed (exit {rc})")
    print(f"=== {bench.name}: {status} in {wall:.0f} s", flush=True)
    record = json.loads(out.read_text()) if out.exists() else {"rows": [], "tables": []}
    run = {"name": bench.name, "command": bench.command, "size": bench.size,
           "status": status, "wall_s": round(wall, 1), "log": str(log),
           "load_after": round(os.getloadavg()[0], 1)}
    out.write_text(json.dumps({**record, "run": run}, indent=2) + "\n")
    return {**record, "run": run}


@contextlib.contextmanager
def _kill_after(child: subprocess.Popen, timeout_s: int):
    """Stop the benchmark's whole process group (Ray's processes included) on timeout."""
    import threading

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
            time.sleep(10)
            os.killpg(child.pid, signal.SIGKILL)

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


# --- the page --------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    mem_kib = next((int(line.split()[1]) for line in
                    Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal:")), 0) if Path("/proc/meminfo").exists() else 0
    return {"CPU": f"{model}, {os.cpu_count()} cores", "RAM": f"{mem_kib / 2**20:.1f} GiB",
            "OS": f"{platform.system()} {platform.release()}",
            "Python": platform.python_version(), "Ray": version("ray"),
            "FFmpeg": _ffmpeg_version()}


def _ffmpeg_version() -> str:
    try:
        first = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True,
                               check=True).stdout.split("\n", 1)[0]
    except (OSError, subprocess.CalledProcessError):
        return "not found"
    return first.split(" Copyright")[0].removeprefix("ffmpeg version ")


def _num(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def render(records: list[dict], info: dict) -> str:
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`.venv/bin/python -m bench.all`); do not edit by hand, "
        "rerun it. Every benchmark runs the real stack (embedded MongoDB-wire and S3 "
        "servers, a local Ray cluster) beside a baseline on the same machine, one after the "
        "other; the ratio is ours / baseline, and the *better* column says which way is good.",
        "",
        f"Last run started {info['date']}; its wall time {info['total_s'] / 60:.1f} min; the "
        "wall times of the benchmarks on this page add up to "
        f"{sum(r['run']['wall_s'] for r in records) / 60:.1f} min; "
        f"1-minute load average {info['load_before']:.1f} before, {info['load_after']:.1f} "
        "after.",
    ]
    cores = os.cpu_count() or 1
    loads = [info["load_before"], info["load_after"]] + [
        r["run"].get("load_after", 0) for r in records]
    if max(loads) > 0.75 * cores:
        lines += ["", f"**Busy machine:** a load average up to {max(loads):.1f} on {cores} "
                  "cores means other work shared the cores with this run; its figures are "
                  "noisy, ratios less so than absolute figures. Rerun on a quiet machine."]
    if info.get("note"):
        lines += ["", f"**Note:** {info['note']}"]
    lines += ["", "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in info["machine"].items()]
    lines += ["", "## Results", "",
              "| benchmark | what is measured | baseline | ours | ratio ours / baseline | better "
              "| target |",
              "|---|---|---|---|---|---|---|"]
    for record in records:
        name = record["run"]["name"]
        if record["run"]["status"] != "ok":
            name += f" ({record['run']['status']}; what it finished)"
        if not record["rows"]:
            lines.append(f"| {name} | {record['run']['status']} | | | | | |")
        for row in record["rows"]:
            unit = row["unit"]
            lines.append(
                f"| {name} | {row['measures']} | {row['baseline']}: "
                f"{_num(row['baseline_value'])} {unit} | {row['ours']}: "
                f"{_num(row['ours_value'])} {unit} | **{_num(row['ratio'])}** | "
                f"{row['better']} | {row['target']} |")
    lines += ["", "## Rerun each", "",
              "| benchmark | command (`make bench` size) | size | wall time | load average "
              "at its end | status |",
              "|---|---|---|---|---|---|"]
    for record in records:
        run = record["run"]
        lines.append(f"| {run['name']} | `{run['command']}` | {run['size']} | "
                     f"{run['wall_s']:.0f} s | {run.get('load_after', '')} | {run['status']} |")
    for record in records:
        lines += _details(record)
    return "\n".join(lines) + "\n"


def _method(command: str) -> str:
    """The benchmark module's docstring up to its usage lines: how it measures."""
    module = command.split(" -m ", 1)[1].split()[0]
    path = ROOT / (module.replace(".", "/") + ".py")
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    kept = []
    for paragraph in doc.split("\n\n"):
        if paragraph.lstrip().startswith(".venv/"):
            break
        if paragraph.startswith("- "):  # a list: one item a line
            kept.append("\n".join("- " + " ".join(item.split())
                                  for item in paragraph[2:].split("\n- ")))
        else:
            kept.append(" ".join(paragraph.split()))
    return "\n\n".join(kept)


def _details(record: dict) -> list[str]:
    lines = ["", f"## {record['run']['name']}", "", f"`{record['run']['command']}`", "",
             _method(record["run"]["command"])]
    for table in record.get("tables", []):
        lines += ["", f"{table['title']}:", "",
                  "| " + " | ".join(table["columns"]) + " |",
                  "|" + "---|" * len(table["columns"])]
        lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in table["rows"]]
    if record.get("notes"):
        lines.append("")
        lines += [f"- {note}" for note in record["notes"]]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHMARKS])
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--results", help="folder for the JSON records and logs "
                        "(default: a new temporary folder)")
    parser.add_argument("--render-only", metavar="FOLDER",
                        help="render the page from a previous run's folder, run nothing")
    parser.add_argument("--note", default="", help="a sentence printed at the top of the page")
    args = parser.parse_args()
    if args.render_only:
        folder = Path(args.render_only)
        info = json.loads((folder / "run.json").read_text())
    else:
        folder = Path(args.results or tempfile.mkdtemp(prefix="farm-bench-results-"))
        folder.mkdir(parents=True, exist_ok=True)
        chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
        info = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "load_before": os.getloadavg()[0], "machine": machine()}
        started = time.perf_counter()
        for bench in chosen:
            run_one(bench, folder)
        info |= {"total_s": time.perf_counter() - started, "load_after": os.getloadavg()[0]}
    # Every record in the folder: `--results DIR --only NAME` reruns one into a full page.
    records = [json.loads((folder / f"{b.name}.json").read_text()) for b in BENCHMARKS
               if (folder / f"{b.name}.json").exists()]
    if args.note:
        info["note"] = args.note
    (folder / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    Path(args.out).write_text(render(records, info))
    print(f"\nwrote {args.out} (records and logs in {folder}); "
          f"total {info['total_s'] / 60:.1f} min")
    failed = [r["run"]["name"] for r in records if r["run"]["status"] != "ok"]
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
