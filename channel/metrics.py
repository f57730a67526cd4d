"""The channel's metrics: results and artifacts stored, counted at each
scrape, and results posted, counted as they come in."""

from __future__ import annotations

import logging

from prometheus_client import Counter
from prometheus_client.metrics_core import Metric
from pymongo.errors import PyMongoError

from channel.artifacts import ArtifactStore
from channel.models import ResultStatus
from channel.store import ResultStore
from serving.metrics import EventMetrics, gauge

log = logging.getLogger(__name__)

RESULTS = "seeker_channel_results_stored"
ARTIFACTS = "seeker_channel_artifacts_stored"
DATABASE_UP = "seeker_channel_database_up"
GAUGES = {
    RESULTS: "Results in the database (the collection's estimated count)",
    ARTIFACTS: "Artifacts in the database (the collection's estimated count)",
    DATABASE_UP: "1 when the database answered this scrape's counts, else 0",
}
POST_OUTCOMES = ("stored", "duplicate")


class ChannelMetrics(EventMetrics):
    """Results as helpers post them."""

    def __init__(self) -> None:
        self.posted = Counter(
            "seeker_channel_results_posted",
            "Results posted, by status and outcome: stored (new) or duplicate (the same"
            " task, helper and attempt again, answered with the stored copy)",
            ["status", "outcome"],
            registry=None,
        )
        for status in ResultStatus:
            for outcome in POST_OUTCOMES:
                self.posted.labels(status=status.value, outcome=outcome)
        super().__init__(self.posted)

    def result_posted(self, status: ResultStatus | str, created: bool) -> None:
        status = status.value if isinstance(status, ResultStatus) else status
        self.posted.labels(status=status, outcome="stored" if created else "duplicate").inc()


class ChannelCollector:
    """Counts in the channel's database at each scrape: estimated counts from
    the collections' metadata, so a scrape never scans results."""

    def __init__(self, results: ResultStore, artifacts: ArtifactStore):
        self.results = results
        self.artifacts = artifacts

    def describe(self) -> list[Metric]:
        return [gauge(name, doc) for name, doc in GAUGES.items()]

    def collect(self) -> list[Metric]:
        try:
            results = self.results.results.estimated_document_count()
            artifacts = self.artifacts.files.estimated_document_count()
        except PyMongoError as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            return [gauge(DATABASE_UP, GAUGES[DATABASE_UP], samples=[((), 0)])]
        return [
            gauge(RESULTS, GAUGES[RESULTS], samples=[((), results)]),
            gauge(ARTIFACTS, GAUGES[ARTIFACTS], samples=[((), artifacts)]),
            gauge(DATABASE_UP, GAUGES[DATABASE_UP], samples=[((), 1)]),
        ]
