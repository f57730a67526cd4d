"""The lease under which one seeker of a group does the periodic work
(probes, the sweep, reaping lost work, withdrawing offers, resending stale
pushes, webhooks, pruning): a document in MongoDB with its holder, its
expiry and a fencing epoch, after client-go's leader election and dstack's
row locks.

- Taking or keeping it is one conditional update: the holder renews its own
  lease (pinned on its epoch); anyone takes an expired one, and the epoch
  goes up by one. The expiry is compared inside the query.
- Times as Kubernetes controllers use them: the lease lasts 15 s, the holder
  renews every 2 s and stops acting as holder when it could not renew for
  10 s (before anyone else can take it); the others try every 2 s.
- The epoch fences: every assignment records the epoch its seeker knew
  when it placed it, and what the holder changes under the lease is pinned
  on that epoch not being newer than its own (`fenced()`), so a deposed
  holder's late writes to work placed since are refused."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from seeker.placement.capacity import as_utc

log = logging.getLogger(__name__)

LEASE_DURATION = timedelta(seconds=15)
RENEW_DEADLINE = timedelta(seconds=10)
RETRY_PERIOD = timedelta(seconds=2)


class Lease:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        name: str = "periodic-work",
        holder: str | None = None,
        duration: timedelta = LEASE_DURATION,
        renew_deadline: timedelta = RENEW_DEADLINE,
    ):
        self.leases = db["leases"]
        self.clock = clock
        self.name = name
        self.holder = holder or uuid.uuid4().hex
        self.duration = duration
        self.renew_deadline = renew_deadline
        self.epoch = 0  # the newest epoch this seeker has seen
        self._renewed: datetime | None = None  # when this seeker last held it
        self._lock = threading.Lock()
        self.on_acquired: Callable[[], None] = lambda: None
        self.facts: dict = {}  # what the holder tells the others (its keys' fingerprints)

    def try_acquire(self) -> bool:
        """Renew the lease if held, take it if expired; learn the epoch
        otherwise. Returns whether this seeker holds it now."""
        now = self.clock()
        try:
            held = self._renew(now) or self._take(now)
            if not held:
                self._learn_epoch()
        except PyMongoError as exc:  # the database is away: hold on until the deadline
            log.warning("lease %s: %s", self.name, exc)
            return self.held()
        return held

    def _renew(self, now: datetime) -> bool:
        if self._renewed is None:
            return False
        renewed = self.leases.update_one(
            {"_id": self.name, "holder": self.holder, "epoch": self.epoch},
            {"$set": {"expires_at": now + self.duration, "renewed_at": now, **self.facts}},
        )
        with self._lock:
            self._renewed = now if renewed.matched_count else None
        if not renewed.matched_count:
            log.warning("lease %s lost (epoch %d): another seeker holds it", self.name, self.epoch)
        return bool(renewed.matched_count)

    def _take(self, now: datetime) -> bool:
        mine = {
            "holder": self.holder,
            "expires_at": now + self.duration,
            "renewed_at": now,
            **self.facts,
        }
        doc = self.leases.find_one_and_update(
            {"_id": self.name, "expires_at": {"$lt": now}},
            {"$set": mine, "$inc": {"epoch": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            try:  # the first seeker on this database
                self.leases.insert_one({"_id": self.name, "epoch": 1, **mine})
                doc = {"epoch": 1}
            except DuplicateKeyError:
                return False  # held by another, not expired
        with self._lock:
            self.epoch = doc["epoch"]
            self._renewed = now
        log.info("lease %s taken (epoch %d)", self.name, self.epoch)
        self.on_acquired()
        return True

    def _learn_epoch(self) -> None:
        doc = self.leases.find_one({"_id": self.name}, {"epoch": 1})
        if doc is not None:
            with self._lock:
                self.epoch = max(self.epoch, doc["epoch"])

    def held(self) -> bool:
        """Whether this seeker may act as the holder now: it renewed within
        the renew deadline (shorter than the lease, so it stops before anyone
        else can take the lease over)."""
        with self._lock:
            renewed = self._renewed
        return renewed is not None and self.clock() - renewed < self.renew_deadline

    def release(self) -> None:
        """Give the lease up at once (a seeker stopping): another takes over
        at its next try instead of after the expiry."""
        if self._renewed is None:
            return
        try:
            self.leases.update_one(
                {"_id": self.name, "holder": self.holder, "epoch": self.epoch},
                {"$set": {"expires_at": self.clock() - timedelta(seconds=1)}},
            )
        except PyMongoError:
            pass  # it expires by itself
        with self._lock:
            self._renewed = None

    def run_if_held(self, job: Callable[[], object]) -> Callable[[], object]:
        """`job` as a periodic job that does nothing unless this seeker holds
        the lease."""

        def guarded():
            if self.held():
                return job()
            return None

        guarded.__name__ = getattr(job, "__name__", "job")
        return guarded

    def state(self) -> dict:
        """The lease as stored (for /metrics and tests)."""
        doc = self.leases.find_one({"_id": self.name}) or {}
        return {**doc, "expires_at": as_utc(doc.get("expires_at"))}


def fenced(epoch: int | None) -> dict:
    """The filter that pins a write made under the lease of `epoch`: the
    document was not placed (or last changed under the lease) in a newer
    epoch. None: not under the lease, no pin."""
    if epoch is None:
        return {}
    return {"$or": [{"epoch": {"$exists": False}}, {"epoch": {"$lte": epoch}}]}
