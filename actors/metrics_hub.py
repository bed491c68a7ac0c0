"""The one metrics aggregator of the cluster: a detached, named actor over MetricsAggregator."""

from __future__ import annotations

import ray

from pipelines.telemetry import MetricsAggregator

NAME = "farm-metrics-hub"
NAMESPACE = "studio-farm"

MetricsHubActor = ray.remote(MetricsAggregator)


def metrics_hub():
    """Get the hub, creating it on first use (safe when several replicas race)."""
    return MetricsHubActor.options(
        name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_restarts=-1, max_task_retries=3,
    ).remote()
