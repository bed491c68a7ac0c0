"""WebSocket fan-out: N clients in one studio room, events published at a steady rate.

Starts the real stack (embedded database and object store, local Ray, Serve with two Api
replicas, the broadcaster actor, the gateway), opens N sockets, then comments on an asset
over REST at a steady rate. Each comment is stored (which gives it its `at`), published
to the broadcaster and fanned out by every process that holds sockets of the studio.
Latency is measured from the state change (the event's `at`, milliseconds) to receipt
by the client; every client checks that it got every event once, in order. Both socket
paths are measured: through Serve's proxy (the Api port, sockets spread over the
replicas) and through the gateway (one uvicorn process beside Serve). Also printed: CPU
microseconds per delivery spent by Serve's proxy, the replicas and the gateway.

    .venv/bin/python -m bench.ws_fanout --clients 100 500 --events 100 --rate 5
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import multiprocessing
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench._harness import Row, Table, add_json_option, register, start_stack, write_json


@dataclass
class Client:
    replica: str = ""
    latencies_ms: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)


@functools.lru_cache(maxsize=4096)  # every client of an event parses the same `at`
def _iso_to_epoch(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


async def _listen(url: str, token: str, client: Client, opened: list[int],
                  all_open: asyncio.Event, done: asyncio.Event,
                  compression: str | None) -> None:
    async with connect(url, subprotocols=["bearer", token], max_queue=None,
                       open_timeout=60, compression=compression) as ws:
        hello = json.loads(await ws.recv())
        client.replica = hello["replica"]
        await ws.send('{"type":"ping"}')  # the first message starts live delivery at once
        opened[0] -= 1
        if opened[0] == 0:
            all_open.set()
        while not done.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            received = time.time()
            frame = json.loads(raw)
            kind = frame.get("type", "")
            if kind == "ping":
                await ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
            elif kind == "asset.commented":
                client.seqs.append(frame["seq"])
                client.latencies_ms.append((received - _iso_to_epoch(frame["at"])) * 1000)


async def _client_share(url: str, token: str, count: int, compression: str | None,
                        ready: Any, stop: Any, progress: Any, slot: int) -> dict:
    """One process's share of the clients: connect all, report progress, then results."""
    clients = [Client() for _ in range(count)]
    opened, all_open, done = [count], asyncio.Event(), asyncio.Event()
    tasks = []
    for i, client in enumerate(clients):
        tasks.append(asyncio.create_task(
            _listen(url, token, client, opened, all_open, done, compression)))
        if i % 50 == 49:
            await asyncio.sleep(0.2)  # a ramp, not a connection storm
    await asyncio.wait_for(all_open.wait(), 120)
    ready.put(slot)
    while not stop.is_set():
        progress[slot] = sum(len(c.seqs) for c in clients)
        await asyncio.sleep(0.1)
    done.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"replicas": [c.replica for c in clients],
            "latencies_ms": [ms for c in clients for ms in c.latencies_ms],
            "in_order": sum(c.seqs == sorted(set(c.seqs)) for c in clients)}


def client_process(url: str, token: str, count: int, compression: str | None, ready: Any,
                   stop: Any, progress: Any, slot: int, results: Any) -> None:
    """Clients run in their own processes, as they would on their own machines: one
    Python loop reading 500 sockets would itself be the slowest part of the path."""
    results.put(asyncio.run(_client_share(url, token, count, compression, ready, stop,
                                          progress, slot)))


async def _publish(http: httpx.AsyncClient, headers: dict, asset_id: str, events: int,
                   rate: float) -> float:
    started = time.perf_counter()
    for i in range(events):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        response = await http.post(f"/api/v1/assets/{asset_id}/comments", headers=headers,
                                   json={"body": f"note {i}", "frame": i})
        response.raise_for_status()
    return time.perf_counter() - started


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            found.append(pid)
            todo.append(pid)
    return found


def _serve_cpu_s() -> dict[str, float]:
    """CPU seconds used so far by this stack's Serve proxy, Api replicas and gateway."""
    used: dict[str, float] = {"proxy": 0.0, "replicas": 0.0, "gateway": 0.0}
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in _descendants(os.getpid()):  # other stacks on the machine are not ours
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = ("proxy" if b"ProxyActor" in cmdline else
                "replicas" if b"ServeReplica:studio-farm:Api" in cmdline else
                "gateway" if b"UploadGateway" in cmdline else None)
        if kind:
            used[kind] += (int(fields[11]) + int(fields[12])) / ticks
    return used


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def run(base_url: str, clients_n: int, events: int, rate: float,
              compression: str | None = "deflate", ws_base: str | None = None,
              procs: int = 2) -> dict:
    headers = register(base_url)
    token = headers["Authorization"].split()[1]
    url = (ws_base or base_url).replace("http://", "ws://") + "/api/v1/ws"
    ctx = multiprocessing.get_context("spawn")
    ready, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    progress = ctx.Array("i", procs)
    shares = [clients_n // procs + (i < clients_n % procs) for i in range(procs)]
    workers = [ctx.Process(target=client_process, args=(
        url, token, share, compression, ready, stop, progress, slot, results))
        for slot, share in enumerate(shares)]
    for worker in workers:
        worker.start()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        asset = (await http.post("/api/v1/assets", headers=headers,
                                 json={"name": "fan-out", "kind": "shot"})).json()
        for _ in workers:
            await asyncio.to_thread(ready.get, True, 180)
        await asyncio.sleep(1.0)
        cpu_before = _serve_cpu_s()
        took = await _publish(http, headers, asset["id"], events, rate)
        for _ in range(300):  # up to 30 s for the stragglers
            if sum(progress[:]) >= clients_n * events:
                break
            await asyncio.sleep(0.1)
        cpu = {k: v - cpu_before[k] for k, v in _serve_cpu_s().items()}
    stop.set()
    outs = [await asyncio.to_thread(results.get, True, 120) for _ in workers]
    for worker in workers:
        worker.join(30)
    return _summary(outs, clients_n, events, rate, took, cpu)


def _summary(outs: list[dict], clients_n: int, events: int, rate: float, took: float,
             cpu: dict[str, float]) -> dict:
    latencies = [ms for out in outs for ms in out["latencies_ms"]]
    replicas = Counter(replica for out in outs for replica in out["replicas"])
    return {
        "clients": clients_n, "events": events, "rate_per_s": rate,
        "publish_s": round(took, 2), "client_processes": len(outs),
        "sockets_per_process": sorted(replicas.values()),
        "delivered": len(latencies), "expected": clients_n * events,
        "clients_in_order_no_dupes": sum(out["in_order"] for out in outs),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(_percentile(latencies, 99), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "cpu_us_per_delivery": {
            kind: round(seconds / max(1, len(latencies)) * 1e6) for kind, seconds in cpu.items()},
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--paths", nargs="+", choices=["serve", "gateway"],
                        default=["serve", "gateway"],
                        help="sockets through Serve's proxy (the Api port) and/or the gateway")
    parser.add_argument("--client-procs", type=int, default=2,
                        help="processes the clients are spread over")
    parser.add_argument("--no-compression", action="store_true",
                        help="clients decline permessage-deflate (browsers always offer it)")
    add_json_option(parser)
    args = parser.parse_args()
    compression = None if args.no_compression else "deflate"
    # A socket is one ongoing request: leave room for every client on either replica.
    stack = start_stack(api_replicas=args.replicas,
                        api_max_ongoing_requests=max(args.clients) + 100)
    results: dict[tuple[str, int], dict] = {}
    try:
        for path in args.paths:
            ws_base = stack.settings.upload_url if path == "gateway" else None
            for n in args.clients:
                result = asyncio.run(run(stack.base_url, n, args.events, args.rate,
                                         compression, ws_base, args.client_procs))
                results[(path, n)] = result
                print(json.dumps({"path": path, **result, "compression": compression}),
                      flush=True)
                # After every run, so a later failure leaves the runs done on record.
                write_json(args.json, "ws_fanout", _rows(results, args),
                           tables=[_table(results)], details={"compression": compression})
    finally:
        stack.stop()


def _rows(results: dict[tuple[str, int], dict], args: argparse.Namespace) -> list[Row]:
    """The gateway's figures against Serve's proxy, per room size (both paths measured)."""
    rows = []
    for n in args.clients:
        serve, gateway = results.get(("serve", n)), results.get(("gateway", n))
        if not (serve and gateway and serve["p99_ms"] and gateway["p99_ms"]):
            continue
        rows.append(Row(f"{n} sockets in one room, {args.events} events at {args.rate:g}/s: "
                        "p99 latency from state change to receipt", "ms",
                        "sockets through Serve's proxy", serve["p99_ms"],
                        "sockets through the gateway", gateway["p99_ms"], better="lower",
                        target="gateway p99 <= 100 ms at 500"))
        # Totals: in both runs the comments (the events' source) go through Serve's proxy.
        rows.append(Row(f"{n} sockets: CPU per delivered event, Serve proxy + replicas + "
                        "gateway (publishing included)", "µs", "sockets through Serve's proxy",
                        sum(serve["cpu_us_per_delivery"].values()),
                        "sockets through the gateway",
                        sum(gateway["cpu_us_per_delivery"].values()), better="lower"))
    return rows


def _table(results: dict[tuple[str, int], dict]) -> Table:
    columns = ["path", "sockets", "delivered / expected", "in order", "p50 ms", "p99 ms",
               "max ms", "CPU µs per delivery (proxy, replicas, gateway)"]
    return Table("Every run", columns, [
        [path, n, f"{r['delivered']} / {r['expected']}", r["clients_in_order_no_dupes"],
         r["p50_ms"], r["p99_ms"], r["max_ms"],
         ", ".join(str(r["cpu_us_per_delivery"][k]) for k in ("proxy", "replicas", "gateway"))]
        for (path, n), r in results.items()])


if __name__ == "__main__":
    main()
