"""Work for helpers that pull it (`helper start --pull`): they accept no
connections, so the seeker never contacts them; each holds a long poll open
instead, and its work is handed out on it.

- The dispatcher chooses a pulling helper as it chooses any helper and
  records the assignment as an offer (state `pushing`, `via: pull`); the
  helper's parked poll is woken at once (`offer`).
- `collect` hands out every offer the helper has not acknowledged, on every
  poll, until it does (delivery at least once: a poll cut off after the
  answer left loses nothing), and says which of the runs the helper reports
  it should stop (cancelled, decided, or run elsewhere meanwhile). It reads
  the database only when a poll may find something: offers on a new
  connection, with news of one (`offer`), and while offers handed out are
  not yet among the runs the helper reports; which runs to stop on a new
  connection, with news of one (`stop`: a task of its ended), while it
  still reports a run it was told to stop, and at least every heartbeat
  interval. A busy helper's other polls cost no read.
- `acknowledge` is the one conditional update `pushing -> accepted`, which
  also names the helper process: only that process runs the attempt, once,
  however often it is handed out or acknowledged.
- `expire` withdraws offers not acknowledged within `ack_timeout`: a failed
  contact, as a push that timed out is, so the replica goes to the next best
  helper and three in a row purge the helper.

Nothing that decides is kept in memory: offers and acknowledgements are
assignment documents, so any seeker sharing the database hands out and takes
them. What this process keeps (news, what it handed out, when it last
looked) only says when to read again: a notice of a stop that went astray
costs a heartbeat interval at most, one of an offer the offer's expiry
(`ack_timeout`: it is placed again), never the offer or the stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from seeker.control.echoes import Echoes
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
        echoes: Echoes | None = None,
    ):
        """`payload` makes what a helper is sent of an assignment (receipt
        included); `wake(helper_id)` answers that helper's parked poll;
        `echoes`: told of each offer made here before it is written, so
        that the change feed's copy of it is not news a second time."""
        self.echoes = echoes
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
        # the runs each helper was last handed (looked for again until it
        # reports them) and last told to stop (checked again while it still
        # reports them); helpers a run of which may be to stop, and when
        # each one's reported runs were last checked
        self._handed: dict[str, set[str]] = {}
        self._told: dict[str, set[str]] = {}
        self._stops: set[str] = set()
        self._checked: dict[str, datetime] = {}
        self._lock = threading.Lock()
        # when an offer was last made or heard of, and offers last expired:
        # with none lately, expire() looks only every EXPIRE_CHECK
        self._offered_at: datetime | None = None
        self._expired_at: datetime | None = None

    def offering(self, offer_id: str) -> Callable[[], None]:
        """An offer (`offer_id`, its assignment's id) is about to be written
        here, and `offer` will be called if it is: its echo from the change
        feed is passed over. Returns what to call if it was not written."""
        if self.echoes is None:
            return lambda: None
        self.echoes.expect("assignments", [offer_id])
        return lambda: self.echoes.forget("assignments", [offer_id])

    def offer(self, helper_id: str) -> None:
        """There is an offer for the helper, made here or heard of from
        another seeker: its next poll looks, and a waiting one is answered."""
        with self._lock:
            self._news.add(helper_id)
            self._offered_at = self.clock()
        self.wake(helper_id)

    def stop(self, helper_id: str) -> None:
        """A task the helper may run ended (cancelled, decided), here or at
        another seeker: its next poll checks its runs, and a waiting one is
        answered."""
        with self._lock:
            self._stops.add(helper_id)
        self.wake(helper_id)

    def _should_look(self, helper_id: str, fresh: bool, have: set[str]) -> bool:
        """Whether a poll looks for offers: on a new connection (what was
        heard meanwhile went elsewhere), with news, while what it was last
        handed is not all among the runs it reports (an acknowledgement
        whose answer was lost: handed out again), and at least every
        RECHECK (a notice lost on its way costs that long, not the offer)."""
        now = self.clock()
        with self._lock:
            news = helper_id in self._news
            self._news.discard(helper_id)
            handed = self._handed.pop(helper_id, set())
            last = self._looked.get(helper_id)
            stale = last is None or not timedelta(0) <= now - last < RECHECK
            if fresh or news or stale or not handed <= have:
                self._looked[helper_id] = now
                return True
        return False

    def _should_check(self, helper_id: str, fresh: bool, running: list[str]) -> bool:
        """Whether a poll's reported runs are checked against the database
        (which to stop): on a new connection, with news of a task of its
        that ended, while it still reports a run it was told to stop (the
        answer that told it was lost), and at least once a heartbeat
        interval (a notice lost costs that long), as a pushed helper's
        heartbeat checks them."""
        now = self.clock()
        every = timedelta(seconds=self.health.heartbeat_interval())
        with self._lock:
            news = helper_id in self._stops
            self._stops.discard(helper_id)
            news = news or not self._told.pop(helper_id, set()).isdisjoint(running)
            last = self._checked.get(helper_id)
            if fresh or news or last is None or not timedelta(0) <= now - last < every:
                self._checked[helper_id] = now
                return True
        return False

    def collect(
        self, helper: dict, boot_id: str, running: list[str], done: list[str], fresh: bool = True
    ) -> dict:
        """What the helper is to do now: {"assignments": [...], "stop": [...]}."""
        helper_id = helper["helper_id"]
        have = set(running) | set(done)
        stop = []
        if self._should_check(helper_id, fresh, running):
            stop = self.health.reconcile(helper_id, helper["name"], running)
            if stop:
                with self._lock:
                    self._told[helper_id] = set(stop)
        if not self._should_look(helper_id, fresh, have):
            return {"assignments": [], "stop": stop}
        offers = self.tasks.offers_for(helper_id, boot_id, have)
        tasks = {t: self.tasks.get(t) for t in {a["task_id"] for a in offers}}
        live = {t: doc for t, doc in tasks.items() if doc and doc["state"] not in TaskState.final()}
        handed = [a for a in offers if a["task_id"] in live]
        if handed:  # handed out again at each poll until the helper has it
            with self._lock:
                self._handed[helper_id] = {a["_id"] for a in handed}
        work = [
            self.payload(live[a["task_id"]], helper, a["attempt"], a.get("reservation") or {})
            for a in handed
        ]
        return {"assignments": work, "stop": stop}

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
