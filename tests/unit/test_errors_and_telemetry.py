"""Pure logic: error mapping and pickling, metric aggregation."""

from __future__ import annotations

import pickle

from prometheus_client import CollectorRegistry, Counter

from pipelines import errors
from pipelines.telemetry import MetricsAggregator, snapshot
from serve.errors import status_for


class AssetNotFound(errors.NotFound):
    code = "asset_not_found"


def test_status_is_found_by_walking_the_class_hierarchy():
    assert status_for(AssetNotFound("no")) == 404
    assert status_for(errors.RateLimited("slow", retry_after_s=3)) == 429
    assert status_for(errors.DependencyUnavailable("db")) == 503
    assert status_for(errors.FarmError("generic")) == 400


def test_errors_survive_pickling_with_their_decisions():
    original = errors.InvalidInput("bad frame range", code="bad_range",
                                   details=[{"loc": ["frames"]}])
    copy = pickle.loads(pickle.dumps(original))
    assert (type(copy), copy.message, copy.code, copy.details) == (
        errors.InvalidInput, "bad frame range", "bad_range", [{"loc": ["frames"]}])
    limited = pickle.loads(pickle.dumps(errors.RateLimited("slow", retry_after_s=7)))
    assert limited.retry_after_s == 7 and limited.retryable


def _registry_with(count: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    counter = Counter("jobs", "Jobs.", ["kind"], registry=registry)
    counter.labels("render").inc(count)
    return registry


def test_aggregator_sums_sources_and_replaces_a_source_snapshot():
    hub = MetricsAggregator()
    hub.report("replica-a", snapshot(_registry_with(2)))
    hub.report("replica-b", snapshot(_registry_with(3)))
    hub.report("replica-a", snapshot(_registry_with(4)))  # cumulative: replaces, never adds
    text = hub.render()
    assert 'jobs_total{kind="render"} 7.0' in text
    assert "jobs_created" not in text
    assert "farm_metrics_sources 2" in text
