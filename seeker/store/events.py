"""What happened, for whoever watches: task finished, task failed or
cancelled, helper purged. Each event is stored (an event log in the seeker's
database, kept `retention` days) and handed to in-process watchers, such as
the webhooks of seeker/control/webhooks.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database

log = logging.getLogger(__name__)

TASK_SUCCEEDED = "task.succeeded"
TASK_FAILED = "task.failed"
TASK_CANCELLED = "task.cancelled"
HELPER_PURGED = "helper.purged"
KINDS = (TASK_SUCCEEDED, TASK_FAILED, TASK_CANCELLED, HELPER_PURGED)

Watcher = Callable[[dict], None]


class EventLog:
    """Events in order: `seq` comes from a counter, one atomic $inc each."""

    def __init__(self, db: Database, clock: Callable[[], datetime], retention_days: int = 7):
        self.events = db["events"]
        self.counters = db["counters"]
        self.clock = clock
        self.retention = timedelta(days=retention_days)
        self._watchers: list[Watcher] = []

    def ensure_indexes(self) -> None:
        self.events.create_index([("seq", ASCENDING)], unique=True, name="in_order")
        self.events.create_index(
            "at", expireAfterSeconds=int(self.retention.total_seconds()), name="expire"
        )

    def watch(self, watcher: Watcher) -> None:
        self._watchers.append(watcher)

    def publish(self, kind: str, **data) -> dict:
        counter = self.counters.find_one_and_update(
            {"_id": "events"},
            {"$inc": {"seq": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        event = {"seq": counter["seq"], "type": kind, "at": self.clock(), **data}
        self.events.insert_one(dict(event))
        for watcher in self._watchers:
            try:
                watcher(event)
            except Exception:  # a watcher never breaks what published the event
                log.exception("event watcher failed on %s", kind)
        return event

    def since(self, seq: int, limit: int = 100) -> list[dict]:
        docs = self.events.find({"seq": {"$gt": seq}}, {"_id": 0}).sort("seq", ASCENDING)
        return list(docs.limit(limit))
