"""The helper's metrics: its slots, its outbox and its GPUs, read at each
scrape, and the containers it ran and the outbox's deliveries, counted as
they happen."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from channel.models import ResultStatus
from serving.metrics import EventMetrics, gauge

# A container runs for seconds (a probe, a test) to a day (a training run).
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
DELIVERY_OUTCOMES = ("delivered", "failed")
GPU_LABELS = ["gpu", "uuid", "model"]

SLOTS = "seeker_helper_slots"
RUNNING = "seeker_helper_containers_running"
QUEUED = "seeker_helper_assignments_queued"
OUTBOX = "seeker_helper_outbox_pending"
GPU_MEMORY_TOTAL = "seeker_helper_gpu_memory_total_bytes"
GPU_MEMORY_USED = "seeker_helper_gpu_memory_used_bytes"
GPU_UTILIZATION = "seeker_helper_gpu_utilization_ratio"
INPUT_CACHE_BYTES = "seeker_helper_input_cache_bytes"
INPUT_CACHE_CAP = "seeker_helper_input_cache_cap_bytes"
INPUT_COUNTERS = {  # read from the cache's own counters at each scrape
    "hits": ("seeker_helper_input_cache_hits", "Inputs a run found in the cache"),
    "misses": ("seeker_helper_input_cache_misses", "Inputs fetched from the channel"),
    "bytes_fetched": (
        "seeker_helper_input_cache_fetched_bytes",
        "Bytes of inputs fetched from the channel",
    ),
    "evictions": (
        "seeker_helper_input_cache_evictions",
        "Inputs removed from the cache to stay under its cap",
    ),
}
GAUGES = {
    SLOTS: ("Assignments this helper runs at once at most", []),
    RUNNING: ("Assignments this helper runs now (slots taken)", []),
    QUEUED: ("Assignments accepted and waiting for a slot (--prefetch)", []),
    OUTBOX: ("Entries (artifacts, results, events) waiting in the outbox", []),
    INPUT_CACHE_BYTES: ("Bytes of inputs kept in the helper's cache", []),
    INPUT_CACHE_CAP: ("The input cache's cap (--input-cache)", []),
    GPU_MEMORY_TOTAL: ("GPU memory, by GPU index", GPU_LABELS),
    GPU_MEMORY_USED: ("GPU memory in use (total less free), by GPU index", GPU_LABELS),
    GPU_UTILIZATION: (
        "Fraction of the last sample period the GPU was busy (NVML), by GPU index",
        GPU_LABELS,
    ),
}


class HelperMetrics(EventMetrics):
    """Containers as they end, and the outbox's delivery tries."""

    def __init__(self) -> None:
        self.containers = Counter(
            "seeker_helper_containers",
            "Assignments run to their end, by result status",
            ["status"],
            registry=None,
        )
        self.duration = Histogram(
            "seeker_helper_container_duration_seconds",
            "Seconds from a container's start to its end, by result status",
            ["status"],
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.deliveries = Counter(
            "seeker_helper_outbox_deliveries",
            "Outbox delivery tries, by kind (artifact, result, event) and outcome"
            " (delivered, or failed and kept to retry or set aside)",
            ["kind", "outcome"],
            registry=None,
        )
        for status in ResultStatus:
            self.containers.labels(status=status.value)
        super().__init__(self.containers, self.duration, self.deliveries)

    def container_ended(
        self, status: str, started_at: datetime | None, finished_at: datetime | None
    ) -> None:
        self.containers.labels(status=status).inc()
        if started_at is not None and finished_at is not None:
            seconds = max(0.0, (finished_at - started_at).total_seconds())
            self.duration.labels(status=status).observe(seconds)

    def counted(self, handlers: dict[str, Callable[[dict], None]]) -> dict:
        """The outbox's handlers, each counting its deliveries and failures
        (a handler that raises failed; the outbox decides what happens next)."""
        return {kind: self._counting(kind, handler) for kind, handler in handlers.items()}

    def _counting(self, kind: str, handler: Callable[[dict], None]) -> Callable[[dict], None]:
        for outcome in DELIVERY_OUTCOMES:
            self.deliveries.labels(kind=kind, outcome=outcome)

        def deliver(payload: dict) -> None:
            try:
                handler(payload)
            except Exception:
                self.deliveries.labels(kind=kind, outcome="failed").inc()
                raise
            self.deliveries.labels(kind=kind, outcome="delivered").inc()

        return deliver


class HelperCollector:
    """What the helper holds, read at each scrape: its slots from the
    executor, its outbox and GPUs from `describe()` (what GET /status says:
    `outbox` and `resources.gpus`, helper/gpus.py's inventory)."""

    def __init__(self, executor, describe: Callable[[], dict]):
        self.executor = executor
        self.describe_helper = describe

    def describe(self) -> list[Metric]:
        counters = [CounterMetricFamily(name, doc) for name, doc in INPUT_COUNTERS.values()]
        return [gauge(name, doc, labels) for name, (doc, labels) in GAUGES.items()] + counters

    def collect(self) -> list[Metric]:
        status = self.describe_helper()
        runs = self.executor.running()  # one snapshot: started and queued add up
        queued = sum(1 for run in runs if run.get("queued"))
        families = [
            self._gauge(SLOTS, [((), self.executor.slots)]),
            self._gauge(RUNNING, [((), len(runs) - queued)]),
            self._gauge(QUEUED, [((), queued)]),
        ]
        if status.get("outbox") is not None:
            families.append(self._gauge(OUTBOX, [((), status["outbox"])]))
        cache = status.get("input_cache")
        if cache is not None:
            families.append(self._gauge(INPUT_CACHE_BYTES, [((), cache["bytes"])]))
            families.append(self._gauge(INPUT_CACHE_CAP, [((), cache["cap"])]))
            families += [
                CounterMetricFamily(name, doc, value=cache[key])
                for key, (name, doc) in INPUT_COUNTERS.items()
            ]
        gpus = [(gpu_labels(g), g) for g in (status.get("resources") or {}).get("gpus") or []]
        families += [
            self._gauge(GPU_MEMORY_TOTAL, [(k, g.get("memory_total", 0)) for k, g in gpus]),
            self._gauge(
                GPU_MEMORY_USED,
                [(k, g.get("memory_total", 0) - g.get("memory_free", 0)) for k, g in gpus],
            ),
            self._gauge(
                GPU_UTILIZATION,
                [(k, g["utilization"] / 100) for k, g in gpus if g.get("utilization") is not None],
            ),
        ]
        return families

    @staticmethod
    def _gauge(name: str, samples: list[tuple]) -> Metric:
        doc, labels = GAUGES[name]
        return gauge(name, doc, labels, samples)


def gpu_labels(gpu: dict) -> tuple:
    return (gpu["index"], gpu.get("uuid", ""), gpu.get("name", ""))
