"""The seeker's metrics: what its database holds, counted at each scrape,
and what the dispatcher, the health checks and the event log did, counted as
it happens."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import Metric
from pymongo.errors import PyMongoError

from seeker.models import AssignmentState, TaskState
from seeker.placement.capacity import as_utc
from seeker.store.events import TASK_CANCELLED, TASK_FAILED, TASK_SUCCEEDED
from seeker.store.helpers import HelperStore, offline_in
from seeker.store.tasks import TO_PLACE, TaskStore
from serving.http import ApiError
from serving.metrics import EventMetrics, gauge

log = logging.getLogger(__name__)

# From submit to a helper taking the push: well under a second when a helper
# is free, up to hours when the task waits for capacity.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
PUSH_OUTCOMES = ("accepted", "busy", "refused", "rejected", "unreachable")
# the events of a task's end, by the state it ended in
ENDS = {
    TASK_SUCCEEDED: TaskState.SUCCEEDED,
    TASK_FAILED: TaskState.FAILED,
    TASK_CANCELLED: TaskState.CANCELLED,
}

TASKS = "seeker_tasks"
QUEUED = "seeker_tasks_queued"
ASSIGNMENTS = "seeker_assignments_live"
HELPERS = "seeker_helpers"
DATABASE_UP = "seeker_database_up"
GAUGES = {
    TASKS: ("Unfinished tasks in the database, by state (pending, dispatched, running)", ["state"]),
    QUEUED: ("Unfinished tasks with replicas still to place (the dispatch queue)", []),
    ASSIGNMENTS: (
        "Live assignments (pushing, accepted, fetching, pulling, running), by state",
        ["state"],
    ),
    HELPERS: (
        "Registered helpers, by state: online when heard from within its liveness deadline",
        ["state"],
    ),
    DATABASE_UP: ("1 when the database answered this scrape's counts, else 0", []),
}


def push_outcome(exc: Exception) -> str:
    """How a push failed, in the dispatcher's terms (see its is_busy and
    is_refusal): busy and refused helpers were reached fine."""
    if isinstance(exc, ApiError):
        return {429: "busy", 403: "refused"}.get(exc.status, "rejected")
    return "unreachable"


class SeekerMetrics(EventMetrics):
    """What the dispatcher, the health checks and the event log report as it
    happens."""

    def __init__(self) -> None:
        self.dispatch_latency = Histogram(
            "seeker_dispatch_latency_seconds",
            "Seconds from a task's submission to a helper accepting the push of one of its"
            " replicas (a replica placed again after a loss counts from submission too)",
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.pushes = Counter(
            "seeker_pushes", "Assignment pushes to helpers, by outcome", ["outcome"], registry=None
        )
        self.failed_contacts = Counter(
            "seeker_failed_contacts",
            "Failed contacts with helpers (pushes and probes that got no usable answer)",
            registry=None,
        )
        self.purges = Counter(
            "seeker_helpers_purged",
            "Helpers purged after too many consecutive failed contacts",
            registry=None,
        )
        self.finished = Counter(
            "seeker_tasks_finished",
            "Tasks this seeker ended, by the state they ended in",
            ["state"],
            registry=None,
        )
        for outcome in PUSH_OUTCOMES:
            self.pushes.labels(outcome=outcome)
        for state in ENDS.values():
            self.finished.labels(state=state.value)
        super().__init__(
            self.dispatch_latency, self.pushes, self.failed_contacts, self.purges, self.finished
        )

    def push_accepted(self, submitted_at: datetime, now: datetime) -> None:
        self.pushes.labels(outcome="accepted").inc()
        self.dispatch_latency.observe(max(0.0, (now - as_utc(submitted_at)).total_seconds()))

    def push_failed(self, exc: Exception) -> None:
        self.pushes.labels(outcome=push_outcome(exc)).inc()

    def contact_failed(self) -> None:
        self.failed_contacts.inc()

    def helper_purged(self) -> None:
        self.purges.inc()

    def published(self, event: dict) -> None:
        """An event this seeker appended to the log (EventLog.watch): a
        task's end is counted once, by the seeker that wrote it."""
        state = ENDS.get(event.get("type"))
        if state is not None:
            self.finished.labels(state=state.value).inc()


class SeekerCollector:
    """Counts in the seeker's database, asked at each scrape: one indexed
    count per unfinished task state and per live assignment state, the queue
    as the dispatcher reads it (`TO_PLACE`, on the `to_place` index), and
    the helpers (a fleet's worth of documents). Not the finished tasks: they
    are the seeker's whole history, which a count per scrape reads whole
    (322 ms of SecantusDB's CPU a scrape with 10,000 of them; so would an
    estimated count there); their ends are counted as they happen
    (SeekerMetrics.finished). Each of these counts reads only unfinished
    work (bench/findings.md 48)."""

    def __init__(
        self,
        tasks: TaskStore,
        helpers: HelperStore,
        clock: Callable[[], datetime],
        liveness: timedelta,
    ):
        self.tasks = tasks
        self.helpers = helpers
        self.clock = clock
        self.liveness = liveness

    @classmethod
    def of(cls, seeker) -> SeekerCollector:
        """The collector over a `seeker.service.Seeker`'s stores and clock."""
        return cls(seeker.tasks, seeker.helpers, seeker.clock, seeker.health.liveness)

    def describe(self) -> list[Metric]:
        return [gauge(name, doc, labels) for name, (doc, labels) in GAUGES.items()]

    def collect(self) -> list[Metric]:
        try:
            families = self._counts()
        except PyMongoError as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            families = []
        up = gauge(DATABASE_UP, GAUGES[DATABASE_UP][0], samples=[((), 1 if families else 0)])
        return [*families, up]

    def _counts(self) -> list[Metric]:
        tasks, assignments = self.tasks.tasks, self.tasks.assignments
        by_state = [
            ((s.value,), tasks.count_documents({"state": s.value})) for s in TaskState.unfinished()
        ]
        queued = tasks.count_documents(TO_PLACE)
        live = [
            ((s.value,), assignments.count_documents({"state": s.value}))
            for s in AssignmentState.live()
        ]
        roster = self.helpers.roster()
        offline = len(offline_in(roster, self.clock(), self.liveness))
        helpers = [(("online",), len(roster) - offline), (("offline",), offline)]
        return [
            self._gauge(TASKS, by_state),
            self._gauge(QUEUED, [((), queued)]),
            self._gauge(ASSIGNMENTS, live),
            self._gauge(HELPERS, helpers),
        ]

    @staticmethod
    def _gauge(name: str, samples: list[tuple]) -> Metric:
        doc, labels = GAUGES[name]
        return gauge(name, doc, labels, samples)
