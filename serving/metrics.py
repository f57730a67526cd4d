"""Prometheus metrics for every service: the two kinds of collector that
`GET /metrics` serves (the route itself: serving.flaskapp.serve_metrics, over
a registry of the app's own).

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

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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
