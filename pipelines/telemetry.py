"""Prometheus metrics summed over every process that reports them.

Each Api replica keeps a prometheus-client registry and sends a cumulative snapshot of it
to one aggregator. Snapshots (not deltas) make a lost or repeated report harmless, and
the aggregator's sum is the cluster total that `/metrics` serves.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels, float]
Family = tuple[str, str, str, list[Sample]]  # name, type, help, samples


def snapshot(registry: CollectorRegistry) -> list[Family]:
    families: list[Family] = []
    for metric in registry.collect():
        samples = [
            (s.name, tuple(sorted(s.labels.items())), float(s.value))
            for s in metric.samples
            if not s.name.endswith("_created")  # creation times do not add up
        ]
        families.append((metric.name, metric.type, metric.documentation, samples))
    return families


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else f"{value:.1f}"


@dataclass
class MetricsAggregator:
    """Holds the latest snapshot of each source and renders their sum."""

    sources: dict[str, list[Family]] = field(default_factory=dict)

    def report(self, source_id: str, families: list[Family]) -> None:
        self.sources[source_id] = families

    def ping(self) -> bool:
        return True

    def render(self) -> str:
        meta: dict[str, tuple[str, str]] = {}
        totals: dict[str, dict[tuple[str, Labels], float]] = defaultdict(dict)
        for families in self.sources.values():
            for name, kind, doc, samples in families:
                meta.setdefault(name, (kind, doc))
                bucket = totals[name]
                for sample_name, labels, value in samples:
                    key = (sample_name, labels)
                    bucket[key] = bucket.get(key, 0.0) + value
        lines: list[str] = [
            "# HELP farm_metrics_sources Processes whose metrics are summed here.",
            "# TYPE farm_metrics_sources gauge",
            f"farm_metrics_sources {len(self.sources)}",
        ]
        for name in sorted(meta):
            kind, doc = meta[name]
            lines.append(f"# HELP {name} {doc}")
            lines.append(f"# TYPE {name} {kind}")
            for (sample_name, labels), value in sorted(totals[name].items(), key=_sort_key):
                rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                label_text = "{" + rendered + "}" if rendered else ""
                lines.append(f"{sample_name}{label_text} {_format_value(value)}")
        return "\n".join(lines) + "\n"


def _sort_key(item: tuple[tuple[str, Labels], float]):
    (sample_name, labels), _ = item
    le = dict(labels).get("le")
    bound = float(le.replace("+Inf", "inf")) if le is not None else 0.0
    rest = tuple((k, v) for k, v in labels if k != "le")
    return (sample_name, rest, bound)
