"""Work for helpers that pull it (`helper start --pull`): they accept no
connections, so the seeker never contacts them; each holds a long poll open
instead, and its work is handed out on it.

- The dispatcher chooses a pulling helper as it chooses any helper and
  records the assignment as an offer (state `pushing`, `via: pull`); the
  helper's parked poll is woken at once (`offer`).
- `collect` hands out every offer the helper has not acknowledged, on every
  poll, until it does (delivery at least once: a poll cut off after the
  answer left loses nothing), and says which of the runs the helper reports
  it should stop (cancelled, decided, or run elsewhere meanwhile).
- `acknowledge` is the one conditional update `pushing -> accepted`, which
  also names the helper process: only that process runs the attempt, once,
  however often it is handed out or acknowledged.
- `expire` withdraws offers not acknowledged within `ack_timeout`: a failed
  contact, as a push that timed out is, so the replica goes to the next best
  helper and three in a row purge the helper.

Nothing here is kept in memory: offers and acknowledgements are assignment
documents, so any seeker sharing the database hands out and takes them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from seeker.control.health import HelperHealth
from seeker.models import TaskState
from seeker.store.tasks import TaskStore

log = logging.getLogger(__name__)
# an idle pulling helper's poll looks for offers at least this often, even
# without news of one (change streams, or this seeker's own placements)
RECHECK = timedelta(hours=1)
# with no offer made or heard of lately, unacknowledged offers are looked for
# this often (an offer whose notice was lost expires this much later)
EXPIRE_CHECK = timedelta(seconds=30)

Payload = Callable[[dict, dict, int, dict], dict]  # (task, helper, attempt, reservation)


class Mailbox:
    def __init__(
        self,
        tasks: TaskStore,
        health: HelperHealth,
        clock: Callable[[], datetime],
        payload: Payload,
        wake: Callable[[str], object] = lambda helper_id: None,
        ack_timeout: timedelta = timedelta(seconds=10),
    ):
        """`payload` makes what a helper is sent of an assignment (receipt
        included); `wake(helper_id)` answers that helper's parked poll."""
        self.tasks = tasks
        self.health = health
        self.clock = clock
        self.payload = payload
        self.wake = wake
        self.ack_timeout = ack_timeout
        # helpers that may have new offers since their last look (an idle
        # helper's poll then costs no query), and when each last looked
        self._news: set[str] = set()
        self._looked: dict[str, datetime] = {}
        self._lock = threading.Lock()
        # when an offer was last made or heard of, and offers last expired:
        # with none lately, expire() looks only every EXPIRE_CHECK
        self._offered_at: datetime | None = None
        self._expired_at: datetime | None = None

    def offer(self, helper_id: str) -> None:
        """There is something new for the helper (an offer, or a run to
        stop), made here or heard of from another seeker: its next poll
        looks, and a waiting one is answered."""
        with self._lock:
            self._news.add(helper_id)
            self._offered_at = self.clock()
        self.wake(helper_id)

    def _should_look(self, helper_id: str, fresh: bool) -> bool:
        """Whether a poll looks for offers: on a new connection (what was
        heard meanwhile went elsewhere), with news, and at least every
        RECHECK (a notice lost on its way costs that long, not the offer)."""
        now = self.clock()
        with self._lock:
            news = helper_id in self._news
            self._news.discard(helper_id)
            last = self._looked.get(helper_id)
            stale = last is None or not timedelta(0) <= now - last < RECHECK
            if fresh or news or stale:
                self._looked[helper_id] = now
                return True
        return False

    def collect(
        self, helper: dict, boot_id: str, running: list[str], done: list[str], fresh: bool = True
    ) -> dict:
        """What the helper is to do now: {"assignments": [...], "stop": [...]}."""
        stop = self.health.reconcile(helper["helper_id"], helper["name"], running)
        if not self._should_look(helper["helper_id"], fresh):
            return {"assignments": [], "stop": stop}
        have = set(running) | set(done)
        offers = self.tasks.offers_for(helper["helper_id"], boot_id, have)
        tasks = {t: self.tasks.get(t) for t in {a["task_id"] for a in offers}}
        live = {t: doc for t, doc in tasks.items() if doc and doc["state"] not in TaskState.final()}
        handed = [
            self.payload(live[a["task_id"]], helper, a["attempt"], a.get("reservation") or {})
            for a in offers
            if a["task_id"] in live
        ]
        if handed:  # handed out again at each poll until acknowledged
            with self._lock:
                self._news.add(helper["helper_id"])
        return {"assignments": handed, "stop": stop}

    def acknowledge(self, task_id: str, helper_id: str, attempt: int, boot_id: str) -> bool:
        """The helper process `boot_id` takes the offer: whether it runs it."""
        taken = self.tasks.acknowledge(task_id, helper_id, attempt, boot_id, self.clock())
        if taken:
            self.health.contact_ok(helper_id)
        return taken

    def refuse(self, task_id: str, helper_id: str, attempt: int, reason: str) -> bool:
        """The helper answers that it will not take the offer (it is full, or
        its policy refuses the image): reached fine, so not a failed contact;
        the replica is placed again (elsewhere first)."""
        now = self.clock()
        if self.tasks.push_failed(task_id, attempt, reason, now, helper_id) is None:
            return False
        self.health.contact_ok(helper_id)
        self.health.kick()
        return True

    def expire(self) -> int:
        """Withdraw the offers not acknowledged in time; each is a failed
        contact of its helper. Returns how many were withdrawn. With no
        offer made or heard of lately, it looks only every EXPIRE_CHECK."""
        now = self.clock()
        lately = self._offered_at is not None and now - self._offered_at < self.ack_timeout * 2
        due = self._expired_at is None or not timedelta(0) <= now - self._expired_at < EXPIRE_CHECK
        if not (lately or due):
            return 0
        self._expired_at = now
        withdrawn = 0
        for a in self.tasks.unacknowledged(now - self.ack_timeout):
            seconds = self.ack_timeout.total_seconds()
            reason = f"{a['helper_name']} did not take the assignment within {seconds:g} s"
            epoch = self.health.lease_epoch()
            if self.tasks.push_failed(a["task_id"], a["attempt"], reason, now, None, epoch) is None:
                continue  # taken or withdrawn meanwhile
            withdrawn += 1
            log.warning("task %s attempt %d: %s", a["task_id"], a["attempt"], reason)
            self.health.contact_failed(a["helper_id"], a["helper_name"], reason)
        if withdrawn:
            self.health.kick()
        return withdrawn
