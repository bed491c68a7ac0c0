"""Shared set-up for benchmarks: embedded services, a local Ray, the Serve app, a studio."""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import ray

from config.settings import Settings
from pipelines.embedded import EmbeddedServices, free_port
from tests.support.services import wait_ready


@dataclass
class Stack:
    settings: Settings
    services: EmbeddedServices
    base_url: str

    cluster: object | None = None

    def stop(self) -> None:
        ray.shutdown()
        if self.cluster is not None:
            self.cluster.shutdown()
        self.services.stop()


def start_stack(farm_nodes: int = 0, farm_slots: int = 2, **overrides: object) -> Stack:
    """Embedded services, Ray (with `farm_nodes` farm nodes if asked), Serve, dispatcher."""
    data_dir = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    services = EmbeddedServices(data_dir)
    found = services.start()
    values = {"env": "test", "data_dir": data_dir, "api_port": free_port(),
              "upload_port": free_port(),
              "bcrypt_rounds": 4, "rate_limit_requests": 10**9,
              # A loaded machine's database can take over 2 s to answer (a 503 then);
              # benchmarks measure throughput, not how an outage is answered.
              "dependency_timeout_s": 30.0,
              # Accounts are confirmed by email in the product; benchmarks measure the
              # farm and the API, so their studios are used at once.
              "email_verification": False, **found, **overrides}
    settings = Settings(**values)
    cluster = None
    if farm_nodes:
        cluster = retry_start(lambda: _cluster(farm_nodes, farm_slots))
        ray.init(address=cluster.address, namespace="studio-farm",
                 logging_level=logging.WARNING)
    else:
        retry_start(lambda: ray.init(address="local", namespace="studio-farm",
                                     include_dashboard=False, logging_level=logging.WARNING))
    from serve import deployments

    deployments.start(settings)
    base_url = f"http://127.0.0.1:{settings.api_port}"
    wait_ready(base_url)
    return Stack(settings, services, base_url, cluster)


def _cluster(farm_nodes: int, farm_slots: int):
    """A head and `farm_nodes` farm nodes. On a failed start the whole cluster goes, so a
    node that registers late cannot join the next try's cluster."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        for _ in range(farm_nodes):
            cluster.add_node(num_cpus=farm_slots, resources={"farm": farm_slots})
        cluster.wait_for_nodes()
    except BaseException:
        cluster.shutdown()
        raise
    return cluster


def retry_start(start, attempts: int = 5):
    """Start a Ray node, again if it missed Ray's fixed 30 s start-up wait, which a new
    node on a heavily loaded machine can (Ray raises a bare Exception for it)."""
    for attempt in range(attempts):
        try:
            return start()
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt == attempts - 1:
                raise
            print(f"a Ray node missed its start-up wait; trying again ({exc})", flush=True)
            ray.shutdown()
    raise AssertionError("unreachable")


def register(base_url: str) -> dict[str, str]:
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    body = {"studio_name": slug, "studio_slug": slug, "email": f"a@{slug}.example",
            "name": "Bench", "password": "benchmark password"}
    response = httpx.post(f"{base_url}/api/v1/auth/register", json=body, timeout=30)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


# --- machine-readable results (`--json PATH`), collected by `python -m bench.all` ---------


@dataclass
class Row:
    """One compared figure: the baseline, ours, and ours / baseline."""

    measures: str
    unit: str
    baseline: str
    baseline_value: float
    ours: str
    ours_value: float
    better: str = "higher"  # which way `ours / baseline` should go
    target: str = ""

    @property
    def ratio(self) -> float:
        return self.ours_value / self.baseline_value if self.baseline_value else float("nan")


@dataclass
class Table:
    """Further figures a benchmark wants shown (e.g. the Serve tuning variants)."""

    title: str
    columns: list[str]
    rows: list[list[object]]


def add_json_option(parser) -> None:
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the result as JSON (read by `python -m bench.all`)")


def write_json(path: str | None, benchmark: str, rows: list[Row], *,
               tables: list[Table] | None = None, notes: list[str] | None = None,
               details: dict | None = None) -> None:
    """The benchmark's figures as one JSON record; nothing happens without a path."""
    if not path:
        return
    record = {
        "benchmark": benchmark,
        "rows": [{**asdict(row), "ratio": row.ratio} for row in rows],
        "tables": [asdict(table) for table in tables or []],
        "notes": notes or [],
        "details": details or {},
    }
    Path(path).write_text(json.dumps(record, indent=2, default=str) + "\n")
