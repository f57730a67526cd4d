"""The channel's metrics: results and artifacts stored, counted every few
minutes at a scrape, and results posted, counted as they come in."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

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
    RESULTS: (
        "Results in the database (the collection's estimated count, every 5 minutes,"
        " and the results this channel stored since)"
    ),
    ARTIFACTS: "Artifacts in the database (the collection's estimated count, every 5 minutes)",
    DATABASE_UP: "1 when the database answered this scrape, else 0",
}
# how often a scrape counts what is stored; the scrapes between show the last
# count (on SecantusDB an estimated count reads every document)
STORED_EVERY = timedelta(minutes=5)
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

    def stored(self) -> int:
        """Results this channel stored since it started (the posts counted
        `stored`, of every status)."""
        (family,) = self.posted.collect()
        return int(
            sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total") and s.labels["outcome"] == "stored"
            )
        )


class ChannelCollector:
    """Counts in the channel's database: the collections' estimated counts,
    which MongoDB reads from their metadata and SecantusDB by reading every
    document (122 ms of its CPU with 20,000 results: bench/findings.md 49),
    so a scrape takes them only when the last are `every` old, and adds to
    the results' count those this channel stored since (`stored`, a count
    that only grows); each scrape asks the database one cheap question (an
    id no result has) for `database_up`."""

    def __init__(
        self,
        results: ResultStore,
        artifacts: ArtifactStore,
        clock: Callable[[], datetime],
        stored: Callable[[], int] = lambda: 0,
        every: timedelta = STORED_EVERY,
    ):
        self.results = results
        self.artifacts = artifacts
        self.clock = clock
        self.stored_here = stored
        self.every = every
        # when, the results counted less those stored here by then, the artifacts
        self._counted: tuple[datetime, int, int] | None = None

    def describe(self) -> list[Metric]:
        return [gauge(name, doc) for name, doc in GAUGES.items()]

    def collect(self) -> list[Metric]:
        try:
            # by an id no result has: an index lookup (SecantusDB reads every
            # document for a find_one({}), as for a count)
            self.results.results.find_one({"_id": 0}, {"_id": 1})
            results, artifacts = self._stored()
        except PyMongoError as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            return [gauge(DATABASE_UP, GAUGES[DATABASE_UP], samples=[((), 0)])]
        return [
            gauge(RESULTS, GAUGES[RESULTS], samples=[((), results)]),
            gauge(ARTIFACTS, GAUGES[ARTIFACTS], samples=[((), artifacts)]),
            gauge(DATABASE_UP, GAUGES[DATABASE_UP], samples=[((), 1)]),
        ]

    def _stored(self) -> tuple[int, int]:
        now, last = self.clock(), self._counted
        if last is None or now - last[0] >= self.every:
            before = self.stored_here()  # a result stored meanwhile may be counted twice
            results = self.results.results.estimated_document_count() - before
            last = self._counted = (now, results, self.artifacts.files.estimated_document_count())
        return last[1] + self.stored_here(), last[2]
