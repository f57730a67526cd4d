"""Prometheus metrics for every service: the `GET /metrics` route over a
registry of the app's own, and the two kinds of collector it serves.

- Counts of what a database or a process holds are read at scrape time by a
  collector of the service's own (a `describe()` that queries nothing, a
  `collect()` that asks).
- What happens (a push accepted, a container ended) is counted as it
  happens, by an `EventMetrics` object that the app factory and the domain
  objects share; domain code calls its methods and never sees Prometheus.

Never the process-wide default registry: tests build many apps in one
process, and each app serves only its own metrics. This module does not
import Flask, so domain modules may import `EventMetrics` from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from flask import Flask

METRICS_PATH = "/metrics"


class EventMetrics:
    """Counters and histograms updated as things happen, served as one
    collector. Subclasses make each metric with `registry=None` (so it
    belongs to no registry but the app's) and pass them all to `__init__`."""

    def __init__(self, *metrics: Collector):
        self._metrics = metrics

    def describe(self) -> Iterator[Metric]:
        for metric in self._metrics:
            yield from metric.describe()

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            yield from metric.collect()


def gauge(
    name: str, doc: str, labels: Iterable[str] = (), samples: Iterable[tuple] = ()
) -> GaugeMetricFamily:
    """A gauge family read at scrape time; `samples` are (label values, value)
    pairs. With no samples it is what a collector's `describe()` returns."""
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for label_values, value in samples:
        family.add_metric([str(v) for v in label_values], value)
    return family


def serve_metrics(app: Flask, *collectors: Collector) -> CollectorRegistry:
    """Serve `collectors` in the Prometheus text format at GET /metrics, from
    a registry made for this app alone; behind the token like every other
    endpoint (only /healthz is open). Returns the registry, which is also
    `app.extensions["metrics"]`."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    app.extensions["metrics"] = registry

    def metrics():
        return app.response_class(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)

    app.add_url_rule(METRICS_PATH, "metrics", metrics, methods=["GET"])
    return registry
