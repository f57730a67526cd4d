"""Helper health: counting failed contacts, purging after the threshold,
and marking the work of dead, purged or restarted helpers lost so that it
runs elsewhere."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from seeker.api.metrics import SeekerMetrics
from seeker.control.beat_checks import BeatChecks
from seeker.models import AssignmentState, TaskState
from seeker.placement.capacity import as_utc, liveness_of
from seeker.store.events import HELPER_PURGED, EventLog
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore

log = logging.getLogger(__name__)

# a good contact is written at most this often per helper: well inside the
# liveness deadline, which heartbeats and probes keep up on their own anyway
CONTACT_EVERY = timedelta(seconds=5)
# Heartbeats: every helper at least this often, and the whole fleet at most
# this many a second (Nomad's rule): the interval grows with the fleet.
MIN_HEARTBEAT = 15.0
HEARTBEATS_PER_SECOND = 50.0
FLEET_COUNT_EVERY = timedelta(seconds=30)


class HelperHealth:
    def __init__(
        self,
        helpers: HelperStore,
        tasks: TaskStore,
        clock: Callable[[], datetime],
        purge_after: int = 3,
        liveness: timedelta = timedelta(seconds=45),
        kick: Callable[[], None] = lambda: None,
        events: EventLog | None = None,
        metrics: SeekerMetrics | None = None,
        contact_every: timedelta = CONTACT_EVERY,
        lease_epoch: Callable[[], int] = lambda: 0,
        batch_contacts: bool = False,
        min_heartbeat: float = MIN_HEARTBEAT,
    ):
        """`lease_epoch()`: the epoch of the lease the periodic work runs
        under (its writes are fenced with it: seeker/store/leases.py).
        `batch_contacts`: good contacts wait in memory for `flush()`, which
        writes them all at once (a seeker process flushes every second)."""
        self.lease_epoch = lease_epoch
        self.batch_contacts = batch_contacts
        self.min_heartbeat = min_heartbeat
        self._seen: dict[str, datetime] = {}  # contacts not yet written (batching)
        self._intervals: dict[str, float] = {}  # new heartbeat intervals, likewise
        self._fleet: tuple[datetime, int] | None = None  # (when counted, helpers)
        self.contact_every = contact_every
        # helper id -> when this process last wrote a good contact for it
        self._contacted: dict[str, datetime] = {}
        self._contact_lock = threading.Lock()
        self.helpers = helpers
        self.tasks = tasks
        self.clock = clock
        self.purge_after = purge_after
        self.liveness = liveness
        self.kick = kick
        self.events = events
        self.metrics = metrics or SeekerMetrics()
        self.beats = BeatChecks(clock)  # which heartbeats' runs are checked

    def contact_ok(self, helper_id: str, heartbeat: float | None = None) -> None:
        """The helper answered (or reported): its failure count starts over
        and it was seen now. Written at most once per `contact_every` per
        helper while no failure was counted in between: every push and
        every event would otherwise each cost a database write.
        `heartbeat`: the new interval it beats at (written with the contact)."""
        now = self.clock()
        if self.batch_contacts:
            with self._contact_lock:
                self._seen[helper_id] = now
                if heartbeat is not None:
                    self._intervals[helper_id] = heartbeat
            return
        if heartbeat is not None:
            self.helpers.set_heartbeat(helper_id, heartbeat)
        with self._contact_lock:
            last = self._contacted.get(helper_id)
            if last is not None and timedelta(0) <= now - last < self.contact_every:
                return
            self._contacted[helper_id] = now
        self.helpers.contact_ok(helper_id, now)

    def contact_failed(self, helper_id: str, name: str, reason: str) -> bool:
        """Count one failed contact (push or probe); purge at the threshold.
        Returns True when the helper was purged."""
        with self._contact_lock:
            self._contacted.pop(helper_id, None)  # the next good contact is written
            self._seen.pop(helper_id, None)  # nor does one waiting in the batch undo it
            self._intervals.pop(helper_id, None)
        failures = self.helpers.contact_failed(helper_id, self.clock(), reason)
        self.metrics.contact_failed()
        if failures is None or failures < self.purge_after:
            return False
        if not self.helpers.purge(helper_id, self.purge_after):
            return False  # purged meanwhile (one event is enough), or it answered since
        log.warning("purging helper %s after %d failed contacts (last: %s)", name, failures, reason)
        self.metrics.helper_purged()
        lost = self.lose_work(helper_id, f"helper {name} purged after {failures} failed contacts")
        if self.events is not None:
            self.events.publish(
                HELPER_PURGED,
                helper_id=helper_id,
                helper_name=name,
                failures=failures,
                reason=reason,
                lost_assignments=lost,
            )
        return True

    def flush(self) -> int:
        """Write the good contacts batched since the last flush, as one
        write; returns how many helpers it covered."""
        with self._contact_lock:
            seen, self._seen = self._seen, {}
            intervals, self._intervals = self._intervals, {}
        if seen:
            self.helpers.seen(sorted(seen), max(seen.values()), intervals)
        return len(seen)

    def heartbeat_interval(self) -> float:
        """Seconds between a helper's heartbeats: `min_heartbeat`, or more
        in a fleet so large that the seeker would hear more than
        HEARTBEATS_PER_SECOND a second (5,000 helpers: 100 s)."""
        now = self.clock()
        if self._fleet is None or not timedelta(0) <= now - self._fleet[0] < FLEET_COUNT_EVERY:
            self._fleet = (now, self.helpers.count())
        return max(self.min_heartbeat, self._fleet[1] / HEARTBEATS_PER_SECOND)

    def helper_joined(self) -> None:
        """A helper new to the registry: counted at once, so a fleet joining
        together is asked for the interval it will need, not the one of the
        fleet counted up to FLEET_COUNT_EVERY ago (helpers told 15 s beat at
        that until their next answer; the count stays a hint, read afresh)."""
        if self._fleet is not None:
            self._fleet = (self._fleet[0], self._fleet[1] + 1)

    def lose_work(
        self, helper_id: str, reason: str, keep=lambda a: False, epoch: int | None = None
    ) -> int:
        """Mark the helper's live assignments lost (but those `keep` accepts)
        and send their tasks back to pending; `epoch`: under the lease."""
        now, lost = self.clock(), 0
        for a in self.tasks.live_assignment_docs(helper_id):
            if keep(a):
                continue
            if not self.tasks.assignment_lost(a["task_id"], a["attempt"], reason, now, epoch):
                continue  # it ended meanwhile (or was placed in a newer epoch)
            lost += 1
            log.warning("task %s attempt %d lost: %s", a["task_id"], a["attempt"], reason)
            self.tasks.reopen(
                a["task_id"], a["attempt"], now, f"attempt {a['attempt']} lost: {reason}"
            )
        if lost:
            self.kick()
        return lost

    def registered(self, previous: dict | None, reg: dict) -> int:
        """A helper (re-)registered. If it is a new process (boot id changed),
        work the old process had and the new one does not run is lost."""
        if previous is None or previous.get("boot_id") == reg.get("boot_id"):
            return 0
        running = set(reg.get("running") or [])

        def keep(a: dict) -> bool:
            if a["state"] not in AssignmentState.on_helper():
                return True  # still being pushed: the push itself will tell
            return a.get("boot_id") == reg.get("boot_id") or a["_id"] in running

        return self.lose_work(reg["helper_id"], f"helper {reg['name']} restarted without it", keep)

    def reconcile(self, helper_id: str, name: str, running: list[str]) -> list[str]:
        """A helper reports what it runs (a poll, a heartbeat): which of
        those runs it is to stop. A run is kept while its assignment is live
        on this helper and its task unfinished. A run that was marked lost
        (its helper was silent or its poll dropped) and is alive after all is
        kept if its replica has not been placed again meanwhile (it is
        further along than a new run would be), and stopped if it has: a
        task never runs beyond its replicas because a helper came back."""
        if not running:
            return []
        found = self.tasks.assignments_by_key(running)
        states = self.tasks.states_of({a["task_id"] for a in found.values()})
        now, stop = self.clock(), []
        for key in running:
            a = found.get(key)
            if (
                a is None
                or a["helper_id"] != helper_id
                or states.get(a["task_id"]) in TaskState.final()
            ):
                stop.append(key)
            elif a["state"] in AssignmentState.live():
                continue
            elif a["state"] == AssignmentState.LOST.value and self.tasks.revive(
                a["task_id"], a["attempt"], helper_id, now
            ):
                log.info(
                    "task %s attempt %d on %s is alive: kept", a["task_id"], a["attempt"], name
                )
                # back from the dead: seen now, not at the next flush, or the
                # reaper, reading its old last_seen, would lose the run again
                self.helpers.contact_ok(helper_id, now)
            else:
                stop.append(key)
        for key in stop:
            log.info("%s runs %s, which is no longer its to run: stopping it", name, key)
        return stop

    def reconcile_beat(self, helper_id: str, name: str, running: list[str]) -> list[str]:
        """A pushed helper's heartbeat: `reconcile`, when the beat may find
        something it did not (seeker/control/beat_checks.py); else nothing
        to stop, with no query."""
        started = self.beats.due(helper_id, running) if running else None
        if started is None:
            return []
        stop = self.reconcile(helper_id, name, running)
        self.beats.done(helper_id, started, running, stop)
        return stop

    def poll_dropped(self, helper_id: str, dropped_at: datetime, still_here: bool) -> int:
        """`grace` after a pulling helper's poll connection dropped: unless it
        came back (`still_here`: it polls this seeker again; or it polled
        another seeker on a new connection since), it died: its work runs
        elsewhere, and it is offline until it polls again."""
        if still_here:
            return 0
        doc = self.helpers.get(helper_id)
        if doc is None:
            return 0
        back = as_utc((doc.get("poll") or {}).get("connected_at"))
        if back is not None and back >= dropped_at:
            return 0
        self.helpers.poll_gone(helper_id, self.clock())
        return self.lose_work(
            helper_id, f"the poll connection of {doc['name']} dropped at {dropped_at:%H:%M:%S}"
        )

    def reap_silent(self) -> int:
        """Helpers silent past the liveness deadline lose their work (they are
        purged by failed probes; this also covers a seeker that cannot probe)."""
        self.flush()  # what this seeker heard lately counts
        now, lost, epoch = self.clock(), 0, self.lease_epoch()
        # only helpers with live work have anything to lose: one query for it
        working = {a["helper_id"] for a in self.tasks.live_assignment_docs()}
        if not working:
            return 0
        helpers = self.helpers.of(sorted(working))  # read now: it decides
        for helper_id in sorted(working):
            h = helpers.get(helper_id)
            if h is None:  # removed by hand
                lost += self.lose_work(helper_id, "helper no longer registered", epoch=epoch)
                continue
            seen = as_utc(h.get("last_seen"))
            if seen is None or seen < now - liveness_of(h, self.liveness):
                reason = f"helper {h['name']} silent since {seen}"
                lost += self.lose_work(helper_id, reason, epoch=epoch)
        return lost
