"""HTTP API overhead: the same app behind Ray Serve and behind plain uvicorn, one run.

One set of embedded services (MongoDB-wire and S3 servers) and one seeded studio (a user,
a bearer token, 60 assets, created through the HTTP API) serve every side:

- baseline: `serve.app.create_app` in one plain uvicorn process (no Ray);
- ours: the Serve application as `farm up` starts it (`serve.deployments.start`: Serve's
  proxy, the Api replicas, and beside them the gateway, dispatcher, broadcaster and
  metrics hub), in a fresh local Ray cluster per variant, because Serve's tuning knobs
  are environment variables read when Ray and Serve start.

Each side gets `--concurrency` clients (one `httpx.AsyncClient` in this process, one
keep-alive connection per client) for `--duration` seconds per endpoint, after a warm-up:
`GET /health` and `GET /api/v1/assets?limit=50`. uvicorn (which idles, using no CPU, while
Serve runs) is measured again just before each Serve variant and once at the end: the
Serve/uvicorn ratio pairs the default variant with the uvicorn window just before it, and
each tuned variant is judged by its share of its own uvicorn window against the default's
share, so drift in the machine's load cancels out (a change under 10 % is called noise).
Printed: requests/s, p50 and p99 per side, the ratio and the verdicts.

    .venv/bin/python -m bench.api
    .venv/bin/python -m bench.api --variants default throughput --duration 5

The clients share the machine with the servers (on 2 cores they take a good part of one),
as they would in any single-machine run; every side pays the same client cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench._harness import Row, Table, add_json_option, register, retry_start, write_json
from bench._load import Load, closed_loop
from pipelines.embedded import EmbeddedServices, child_setup, free_port

ENDPOINTS = {"health": "/health", "assets": "/api/v1/assets?limit=50"}
ASSETS = 60



@dataclass
class Variant:
    what: str
    env: dict[str, str] = field(default_factory=dict)  # for Ray and Serve, read at start
    settings: dict[str, object] = field(default_factory=dict)  # Settings overrides
    # Api deployment options over those `build_app` sets (then `serve.run` is called here,
    # as `deployments.start` does, with the options changed).
    deployment: dict[str, object] = field(default_factory=dict)


VARIANTS = {
    "default": Variant("Settings defaults: 2 replicas, max_ongoing_requests 200"),
    "throughput": Variant("RAY_SERVE_THROUGHPUT_OPTIMIZED=1",
                          {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}),
    "no-thread": Variant("RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0",
                         {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}),
    "no-stderr-log": Variant("RAY_SERVE_LOG_TO_STDERR=0 (Serve logs to files only)",
                             {"RAY_SERVE_LOG_TO_STDERR": "0"}),
    "no-access-log": Variant("Api deployment logging_config enable_access_log=False",
                             deployment={"logging_config": {"enable_access_log": False}}),
    "1-replica": Variant("api_replicas=1", settings={"api_replicas": 1}),
    "4-replicas": Variant("api_replicas=4", settings={"api_replicas": 4}),
    "ongoing-5": Variant("max_ongoing_requests=5 (Serve's own default)",
                         settings={"api_max_ongoing_requests": 5}),
    "throughput-1-replica": Variant("RAY_SERVE_THROUGHPUT_OPTIMIZED=1, api_replicas=1",
                                    {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
                                    {"api_replicas": 1}),
}
DEFAULT_VARIANTS = ["default", "throughput", "no-thread", "no-access-log", "1-replica"]


def measure(base: str, headers: dict, args: argparse.Namespace) -> dict[str, Load]:
    check = httpx.get(f"{base}{ENDPOINTS['assets']}", headers=headers, timeout=30)
    check.raise_for_status()
    assert len(check.json()["items"]) == 50, check.text
    return {name: asyncio.run(closed_loop(base, path, headers, args.concurrency, args.warmup,
                                    args.duration))
            for name, path in ENDPOINTS.items()}


def seed(base: str) -> dict[str, str]:
    """A studio with its admin (the bearer token's user) and ASSETS assets, over HTTP."""
    headers = register(base)
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for i in range(ASSETS):
            client.post("/api/v1/assets", json={"name": f"shot {i:03d}",
                                                "kind": "shot"}).raise_for_status()
    return headers


# --- the servers, each in its own process ---------------------------------------------


def _child(kind: str, settings_file: Path, env: dict[str, str], port: int,
           log: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "bench.api", "--child", kind,
            "--settings-file", str(settings_file), "--port", str(port)]
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **env},
                                preexec_fn=lambda: child_setup(signal.SIGTERM))


def _stop(child: subprocess.Popen, kind: str) -> None:
    if kind == "uvicorn":
        child.terminate()  # uvicorn's own graceful shutdown
    if child.stdin:
        child.stdin.close()  # the Serve child's cue to shut its cluster down
    try:
        child.wait(60)
    except subprocess.TimeoutExpired:
        child.terminate()
        child.wait(30)


def _settings(values: dict, port: int):
    from config.settings import Settings

    return Settings(**{**values, "api_port": port})


def run_uvicorn_child(values: dict, port: int) -> None:
    import uvicorn

    from serve.app import create_app
    from serve.cluster_link import LocalLink

    app = create_app(_settings(values, port), LocalLink())
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_config=None,
                server_header=False, timeout_keep_alive=30)


def run_serve_child(values: dict, port: int) -> None:
    import ray

    from serve import deployments

    options = values.pop("_deployment", {})
    settings = _settings(values, port)
    retry_start(lambda: ray.init(address="local", namespace="studio-farm",
                                 include_dashboard=False, logging_level=logging.WARNING))
    try:
        if options:
            _start_with_options(deployments, settings, options)
        else:
            deployments.start(settings)  # the path `farm up` takes
        sys.stdin.read()  # serve until the parent closes our stdin
    finally:
        ray.shutdown()


def _start_with_options(deployments, settings, options: dict) -> None:
    """`deployments.start` with the Api deployment's options changed."""
    from ray import serve

    upload_gateway = deployments.launch_farm(settings)
    serve.start(http_options={"host": settings.api_host, "port": settings.api_port})
    app = deployments.Api.options(
        num_replicas=settings.api_replicas,
        max_ongoing_requests=settings.api_max_ongoing_requests,
        ray_actor_options={"num_cpus": settings.api_replica_cpus}, **options,
    ).bind(settings)
    serve.run(app, name=deployments.APP_NAME, route_prefix="/")
    deployments.gateway.wait_gateway(upload_gateway)


# --- the run ---------------------------------------------------------------------------


@contextlib.contextmanager
def server(kind: str, settings_file: Path, env: dict[str, str], log: Path):
    """One server process, ready; yields its base URL and how long it took to start."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    child = _child(kind, settings_file, env, port, log)
    try:
        _wait_ready(child, base, log)
        yield base, time.perf_counter() - started
    finally:
        _stop(child, kind)


def _wait_ready(child: subprocess.Popen, base: str, log: Path, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"server exited ({child.returncode}):\n" + "\n".join(tail))
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/ready", timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"server at {base} not ready after {timeout_s:.0f} s; see {log}")


def main() -> None:
    args = parse_args()
    if args.child:
        values = json.loads(Path(args.settings_file).read_text())
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        (run_uvicorn_child if args.child == "uvicorn" else run_serve_child)(values, args.port)
        return
    data_dir = Path(tempfile.mkdtemp(prefix="farm-bench-api-"))
    services = EmbeddedServices(data_dir)
    try:
        values = {"env": "test", "data_dir": str(data_dir), "upload_port": free_port(),
                  "bcrypt_rounds": 4, "rate_limit_requests": 10**9,
                  "access_token_ttl_s": 3600,  # one token lasts a slow run
                  "dependency_timeout_s": 30.0,  # no 503s from a slow database on a busy box
                  # Accounts are confirmed by email in the product; the benchmark seeds
                  # its studio over HTTP and uses it at once.
                  "email_verification": False,
                  **services.start()}
        values = {k: v.get_secret_value() if hasattr(v, "get_secret_value") else v
                  for k, v in values.items()}
        settings_file = data_dir / "bench-settings.json"
        settings_file.write_text(json.dumps(values))
        log = data_dir / "servers.log"
        results = run_all(settings_file, args, log)
    except BaseException:
        print(f"server log: {data_dir / 'servers.log'}", file=sys.stderr)
        raise
    finally:
        services.stop()
    report(results, args)
    shutil.rmtree(data_dir, ignore_errors=True)


def run_all(settings_file: Path, args: argparse.Namespace, log: Path) -> dict:
    """uvicorn is measured again just before each Serve variant starts (it idles while
    Serve runs, using no CPU) and once more at the end: each variant is judged against
    the uvicorn window next to it, so drift in the machine's load cancels out."""
    results: dict[str, tuple[dict[str, Load], float]] = {}
    pairs: dict[str, dict[str, Load]] = {}
    with server("uvicorn", settings_file, {}, log) as (base, start_s):
        headers = seed(base)
        time.sleep(args.settle)
        for name in args.variants:
            pairs[name] = measure(base, headers, args)
            print(f"uvicorn: {_line(pairs[name])}", flush=True)
            variant = VARIANTS[name]
            # Settings and deployment overrides travel in a settings file of their own.
            values = json.loads(settings_file.read_text()) | variant.settings
            file = settings_file.with_name(f"bench-settings-{name}.json")
            file.write_text(json.dumps({**values, "_deployment": variant.deployment}))
            with server("serve", file, variant.env, log) as (serve_base, serve_start_s):
                time.sleep(args.settle)  # the start's own work (workers, imports) dies down
                results[name] = (measure(serve_base, headers, args), serve_start_s)
            print(f"serve {name}: {_line(results[name][0])}", flush=True)
        last = measure(base, headers, args)
        print(f"uvicorn: {_line(last)}", flush=True)
    windows = [*pairs.values(), last]
    merged = {e: functools.reduce(Load.merge, (w[e] for w in windows)) for e in ENDPOINTS}
    return {"results": {"uvicorn": (merged, start_s), **results}, "pairs": pairs,
            "uvicorn_windows": windows}


def _line(loads: dict[str, Load]) -> str:
    return "; ".join(f"{name} {load.rate:7.1f} req/s p50 {load.percentile(50):6.2f} ms "
                     f"p99 {load.percentile(99):6.2f} ms errors {load.errors}"
                     for name, load in loads.items())


def report(run: dict, args: argparse.Namespace) -> None:
    results, pairs = run["results"], run["pairs"]
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"{args.concurrency} concurrent clients, {args.duration:g} s per endpoint")
    rows: list[Row] = []
    reference = "default" if "default" in results else args.variants[0]
    serve, base = results[reference][0], pairs[reference]
    for name, path in ENDPOINTS.items():
        b, s = base[name], serve[name]
        print(f"GET {path}: Serve/uvicorn req/s {s.rate / b.rate:.2f}, "
              f"p50 {s.percentile(50):.2f} vs {b.percentile(50):.2f} ms, "
              f"p99 {s.percentile(99):.2f} vs {b.percentile(99):.2f} ms")
        what = f"`GET {path}`, {args.concurrency} concurrent clients"
        rows.append(Row(f"{what}: throughput", "req/s", "plain uvicorn", b.rate,
                        f"Ray Serve ({reference})", s.rate))
        rows.append(Row(f"{what}: p99 latency", "ms", "plain uvicorn", b.percentile(99),
                        f"Ray Serve ({reference})", s.percentile(99), better="lower"))
    table = _variants_table(results, pairs)
    for line in table.rows:
        print("  ".join(str(cell) for cell in line))
    drift = ", ".join(f"{w['health'].rate:.0f}" for w in run["uvicorn_windows"])
    notes = [f"uvicorn `/health` req/s in its successive windows (drift of the machine's "
             f"load over the run): {drift}.", *_verdicts(results, pairs, reference)]
    for note in notes:
        print(note)
    write_json(args.json, "api", rows, tables=[table], notes=notes + KNOBS, details={
        "concurrency": args.concurrency, "duration_s": args.duration,
        "sides": {name: {"start_s": round(start, 1),
                         **{e: load.summary() for e, load in loads.items()}}
                  for name, (loads, start) in results.items()},
        "uvicorn_before": {name: {e: load.summary() for e, load in loads.items()}
                           for name, loads in pairs.items()}})


def _verdicts(results: dict, pairs: dict, reference: str) -> list[str]:
    """Each tuned variant against the reference, both as a fraction of the uvicorn window
    next to it: helped only if every endpoint gained 10 % or more."""
    def share(name: str, e: str) -> float:
        return results[name][0][e].rate / pairs[name][e].rate

    notes = []
    for name in pairs:
        if name == reference:
            continue
        gains = {e: share(name, e) / share(reference, e) for e in ENDPOINTS}
        p99s = {e: results[name][0][e].percentile(99) / results[reference][0][e].percentile(99)
                for e in ENDPOINTS}
        verdict = ("helped" if min(gains.values()) >= 1.1 else
                   "hurt" if max(gains.values()) <= 0.9 else "no clear change (within ±10 %)")
        figures = "; ".join(f"{e} req/s x{gains[e]:.2f} (load-corrected), p99 x{p99s[e]:.2f}"
                            for e in ENDPOINTS)
        notes.append(f"Tuning `{VARIANTS[name].what}` against Serve {reference}: {figures}: "
                     f"**{verdict}**.")
    return notes


KNOBS = [
    "`RAY_SERVE_THROUGHPUT_OPTIMIZED=1` (read when Ray starts; set it in the environment of "
    "`ray start`/`farm up`) turns on, unless set otherwise: user code on the replica's main "
    "event loop (`RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0`), the router in the caller's "
    "loop, gRPC between proxy and replicas, direct ingress (each replica also listens on an "
    "HTTP port from 30000-31000), no Serve logs to stderr (files only), and a frozen GC "
    "after start.",
    "`RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0` alone saves a thread hop per request; "
    "the price: any handler or dependency that blocks the event loop (a synchronous "
    "client call not sent to a thread) then stalls every other request on that replica "
    "and its health checks.",
    "Replicas and `max_ongoing_requests` are Settings (`api_replicas`, "
    "`api_max_ongoing_requests`); on one machine more replicas share the same cores.",
]


def _variants_table(results: dict, pairs: dict) -> Table:
    columns = ["side", "what changes", "start s"]
    for name in ENDPOINTS:
        columns += [f"{name} req/s", f"{name} p50 ms", f"{name} p99 ms",
                    f"{name} uvicorn req/s just before", f"{name} share of uvicorn"]
    rows = []
    for side_name, (loads, start_s) in results.items():
        what = ("plain uvicorn, one process: all its windows together"
                if side_name == "uvicorn" else VARIANTS[side_name].what)
        row: list[object] = [side_name, what, f"{start_s:.0f}"]
        for name in ENDPOINTS:
            load, before = loads[name], pairs.get(side_name, {}).get(name)
            row += [f"{load.rate:.0f}", f"{load.percentile(50):.1f}",
                    f"{load.percentile(99):.1f}", f"{before.rate:.0f}" if before else "",
                    f"{load.rate / before.rate:.2f}" if before else ""]
        rows.append(row)
    return Table("Every side (Serve variants each in a fresh Ray cluster; uvicorn measured "
                 "again just before each)", columns, rows)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=6.0,
                        help="timed seconds per endpoint and side (default 6)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of load before the timed window (default 2)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="idle seconds after a server is ready, before the load")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS),
                        default=DEFAULT_VARIANTS,
                        help=f"Serve variants to run (default: {' '.join(DEFAULT_VARIANTS)})")
    parser.add_argument("--child", choices=("uvicorn", "serve"), help=argparse.SUPPRESS)
    parser.add_argument("--settings-file", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    add_json_option(parser)
    return parser.parse_args()


if __name__ == "__main__":
    main()
