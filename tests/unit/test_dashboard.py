"""The Grafana dashboard in ops/ asks only for metrics the code exports, and docker-compose
loads it: a panel naming a metric that was renamed or never existed fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from pipelines.farm.control.metrics import FarmMetrics
from serve.metrics import HttpMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops/grafana/dashboards/studio-farm.json"
METRIC = re.compile(r"\bfarm_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
            "gauge": ("",)}


def exported(*registries: CollectorRegistry) -> set[str]:
    """Every series name the registries serve (a counter `x` is served as `x_total`)."""
    names = {"farm_metrics_sources"}  # the hub's own (pipelines/telemetry.py)
    for registry in registries:
        for family in registry.collect():
            names |= {family.name + s for s in SUFFIXES[family.type]}
    return names


def exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_every_metric_a_panel_names_is_exported():
    known = exported(FarmMetrics().registry, HttpMetrics().registry)
    named = {m for expr in exprs() for m in METRIC.findall(expr)}
    assert named, "the dashboard names no metric"
    assert named <= known, f"panels name metrics the code does not export: {named - known}"


def test_the_dashboard_shows_the_farm_and_the_api():
    named = {m for expr in exprs() for m in METRIC.findall(expr)}
    for wanted in ("farm_tasks", "farm_nodes", "farm_slots", "farm_task_outcomes_total",
                   "farm_dispatch_round_seconds_bucket", "farm_http_requests_total",
                   "farm_websocket_connections", "farm_upload_bytes_total"):
        assert wanted in named


def test_docker_compose_loads_it_from_prometheus():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    for mount in mounts:
        assert (ROOT / mount.split(":")[0]).exists(), mount
    provider = yaml.safe_load(
        (ROOT / "ops/grafana/provisioning/dashboards/studio-farm.yml").read_text())
    assert any(m.endswith(":" + provider["providers"][0]["options"]["path"] + ":ro")
               for m in mounts)
    [source] = yaml.safe_load((ROOT / "ops/grafana/provisioning/datasources/prometheus.yml"
                               ).read_text())["datasources"]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert {p["datasource"]["uid"] for p in panels} == {source["uid"]}
    assert source["url"].startswith("http://prometheus:")
