"""What happened, for whoever watches: task finished, task failed or
cancelled, helper purged. Each event is stored (an event log in the seeker's
database, kept `retention` days) and handed to in-process watchers, such as
the webhooks of seeker/control/webhooks.py.

An event is appended with one insert of the number after the newest event's
(a unique index on `seq` refuses a number taken meanwhile, and the publisher
takes the next). So event N+1 is only ever written by a publisher that saw N
written: a reader that has N+1 has N, whichever seeker and thread wrote
them, and a webhook's cursor never passes an event still on its way."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

if TYPE_CHECKING:
    from seeker.control.echoes import Echoes

log = logging.getLogger(__name__)

TASK_SUCCEEDED = "task.succeeded"
TASK_FAILED = "task.failed"
TASK_CANCELLED = "task.cancelled"
HELPER_PURGED = "helper.purged"
# where requests waiting for the next event wait (serving/parking.py); not a
# helper id, which has no "/"
EVENT_WAITS = "/events"
# the longest a request may wait for the next event (GET /api/v1/events?wait=)
MAX_EVENT_WAIT = 300
# where a request waiting for a task to end waits: this and the task's id
# (GET /api/v1/tasks/<id>?wait=, at most MAX_EVENT_WAIT seconds)
TASK_WAITS = "/tasks/"
KINDS = (TASK_SUCCEEDED, TASK_FAILED, TASK_CANCELLED, HELPER_PURGED)

Watcher = Callable[[dict], None]


class EventLog:
    """Events in order, numbered by `seq` without a gap or a late one."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        retention_days: int = 7,
        echoes: Echoes | None = None,
    ):
        """`echoes`: told each event's id before it is written, so that the
        change feed passes over the insert it brings back (the watchers here
        are told of the event in process)."""
        self.events = db["events"]
        self.counters = db["counters"]  # where the numbering started, before this log
        self.clock = clock
        self.retention = timedelta(days=retention_days)
        self._watchers: list[Watcher] = []
        self._next: int | None = None  # the number after the last this log wrote
        # the newest number this process has seen: where the search for the
        # newest starts (a bare sort scans the whole log on SecantusDB); not
        # what decides the number, which the insert does
        self._seen = 0
        # this process's publishers take turns: two threads guessing the
        # same number make one of them fail and read the newest (the other
        # seekers are still kept in order by the unique index alone)
        self._turn = threading.Lock()
        self._echoes = echoes

    def ensure_indexes(self) -> None:
        self.events.create_index([("seq", ASCENDING)], unique=True, name="in_order")
        if "expire" in self.events.index_information():
            # a TTL index could empty the log, and the numbering start over:
            # prune() keeps the newest event instead
            self.events.drop_index("expire")
        self.events.create_index([("at", ASCENDING)], name="by_time")

    def watch(self, watcher: Watcher) -> None:
        self._watchers.append(watcher)

    def publish(self, kind: str, **data) -> dict:
        """Append an event: the number after the newest, in one insert; if
        another publisher took that number meanwhile, the one after. The
        number after this log's own last event is tried without a read: it
        exists, so its successor may follow it (and if another took it, the
        insert fails and the newest is read)."""
        with self._turn:
            while True:
                seq = self._next or self._last_seq() + 1  # a guess: after the last it wrote
                event = {"seq": seq, "type": kind, "at": self.clock(), **data}
                event_id = ObjectId()
                if self._echoes is not None:
                    self._echoes.expect("events", [event_id])
                try:
                    self.events.insert_one({"_id": event_id, **event})
                    self._next = seq + 1
                    break
                except DuplicateKeyError:
                    self._next = None  # taken meanwhile: read what came in since
                except Exception:
                    # maybe written, and the watchers are not told: if the
                    # feed brings it, it is news
                    if self._echoes is not None:
                        self._echoes.forget("events", [event_id])
                    raise
        for watcher in self._watchers:
            try:
                watcher(event)
            except Exception:  # a watcher never breaks what published the event
                log.exception("event watcher failed on %s", kind)
        return event

    def _last_seq(self) -> int:
        newest = None
        if self._seen:  # prune() keeps the newest, so it is at or past what was seen
            newest = self._newest({"seq": {"$gte": self._seen}})
        newest = newest or self._newest({})
        if newest is not None:
            self._seen = newest["seq"]
            return newest["seq"]
        counter = self.counters.find_one({"_id": "events"})  # numbered by a counter before
        return counter["seq"] if counter else 0

    def _newest(self, query: dict) -> dict | None:
        return self.events.find_one(query, {"seq": 1}, sort=[("seq", DESCENDING)])

    def prune(self) -> int:
        """Forget events older than the retention, but never the newest
        (the numbering goes on from it). Returns how many were removed."""
        newest = self._last_seq()
        cutoff = self.clock() - self.retention
        old = {"at": {"$lt": cutoff}, "seq": {"$lt": newest}}
        return self.events.delete_many(old).deleted_count

    def since(self, seq: int, limit: int = 100) -> list[dict]:
        docs = self.events.find({"seq": {"$gt": seq}}, {"_id": 0}).sort("seq", ASCENDING)
        return list(docs.limit(limit))
