"""Pushing pending tasks to the best helper, and failing over to the next."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from itertools import chain

from seeker.api.metrics import SeekerMetrics
from seeker.control.acceptances import Acceptances
from seeker.control.contact import InlinePushes, PushOutcome
from seeker.control.dispatch_state import (
    after_assign,
    all_full,
    assignment_payload,
    full,
    refused_lately,
    slots_in_use,
    task_view,
    told_why,
)
from seeker.control.health import HelperHealth
from seeker.control.mailbox import Mailbox, Payload
from seeker.control.no_room import SKEW, NoRoom, no_room, signature, watermark_after
from seeker.control.stale_pushes import StalePushes
from seeker.helper_models import HelperMode
from seeker.models import TaskState
from seeker.placement import select
from seeker.placement.capacity import KeptViews, after_placing, as_utc
from seeker.placement.fleet import Fleet
from seeker.placement.gpus import reservation_for
from seeker.placement.live import LiveSet
from seeker.placement.views import HelperView, TaskView
from seeker.store.assignments import assignment_id
from seeker.store.helpers import HelperStore
from seeker.store.queue import Queue
from seeker.store.tasks import QUEUE_LIMIT, SlotTaken, TaskStore

log = logging.getLogger(__name__)

Push = Callable[[dict, dict], "dict | None"]  # (helper document, assignment) -> reply
# a helper where a push or offer of a task just failed is passed over for
# that task this long (the sweep tries again after it)
RETRY_AFTER = timedelta(seconds=5)
EVER = datetime(1970, 1, 1, tzinfo=timezone.utc)  # a search back to the first task


def _nothing() -> None:
    pass


class Dispatcher(StalePushes):
    def __init__(
        self,
        tasks: TaskStore,
        helpers: HelperStore,
        push: Push,
        clock: Callable[[], datetime],
        health: HelperHealth | None = None,
        liveness: timedelta = timedelta(seconds=45),
        metrics: SeekerMetrics | None = None,
        stop: Callable[[dict, str, int], object] | None = None,
        pushes=None,
        mailbox: Mailbox | None = None,
        retry_after: timedelta = RETRY_AFTER,
        payload: Payload | None = None,
        acceptances: Acceptances | None = None,
    ):
        """`pushes`: where pushes run, a concurrent.futures Executor (default:
        inline); `mailbox`: where the work of pulling helpers waits for them;
        `retry_after`: how long a helper is passed over for a task whose push
        or offer to it failed; `payload`: what a helper is sent of an
        assignment, the mailbox's too (default: assignment_payload);
        `acceptances`: where the helpers' answers to pushes are recorded
        (default: at once)."""
        self.tasks = tasks
        self.helpers = helpers
        self.push = push
        self.clock = clock
        self.health = health or HelperHealth(helpers, tasks, clock)
        self.liveness = liveness
        self.metrics = metrics or SeekerMetrics()
        self.pushes = pushes or InlinePushes()
        self.mailbox = mailbox
        self.retry_after = retry_after
        self.payload = payload or assignment_payload
        # `stop`: (helper, task id, attempt) -> stop a replica whose task ended during its push
        self.acceptances = acceptances or Acceptances(tasks, self.health, clock, stop)
        self._lock = threading.Lock()
        # helper id -> its slots in use, this pass (of the live assignments it read)
        self._slots: dict[str, set[int]] = {}
        self._live = LiveSet()
        self._views = KeptViews()  # the helpers' views, kept from one pass to the next
        self._queues = False  # whether a helper of this pass prefetches
        self._told: dict[str, list[str]] = {}  # reason -> the tasks this pass told it
        # the tasks the last pass left pending, as they are after it, and
        # whether they were the whole queue: where a pass on room alone starts
        self._left: tuple[list[dict], bool] | None = None
        self._kept: set[str] = set()  # the ids of those this pass started from
        # whether the last pass left a task waiting (for room): a freed slot
        # is then worth a pass; a hint, the sweep places what it misses
        self.waiting = True
        self._no_room = NoRoom()  # what the last pass found of a fleet with no room

    def wants_room(self) -> bool:
        """Whether a freed slot may let something be placed: the last pass
        left a task waiting, or a pass is under way (it may)."""
        return self.waiting or self._lock.locked()

    def dispatch_pending(self, news: bool = True, joined: list[str] | None = None) -> int:
        """Try to place every pending task; returns how many were placed.
        `news`: a task may have joined the queue since the last pass (False:
        only room was made, so a pass that finds none left reads no further,
        and starts from the tasks the last pass left, with no query: news
        comes of any other change of the queue, and the sweep is news).
        `joined`: the news is only of these tasks, submitted, the newest: the
        pass starts from those the last pass left too, reads past them, and
        looks only among these for the tasks new to the queue."""
        with self._lock:  # one placement pass at a time: no oversubscription
            started, fleet = self.clock(), None
            if news and self._no_room.may_settle(started):
                fleet = self._fleet()
                watermark = self._no_room.settles(fleet[2])
                if watermark is not None:  # still no room: only the new are told why
                    return self._tell_new(fleet, joined, watermark, started)
            kept, self._left = (None if news and joined is None else self._left), None
            if kept is not None and news:
                kept = (kept[0], False)  # new tasks past them
            queue = self.tasks.queue(kept=kept)
            self._kept = {t["_id"] for t in kept[0]} if kept else set()
            try:
                return self._pass(queue, news, joined, started, fleet)
            finally:
                queue.close()

    def _fleet(self) -> tuple[dict[str, dict], list[dict], Fleet]:
        """The helpers by id, the live assignments, and the helpers' views
        (the last pass's fleet, brought up to date)."""
        docs = self.helpers.registry()
        live = self.tasks.live_for_placement(self.clock())
        views = self._views.fleet(list(docs.values()), live, self.clock(), self.liveness)
        self._live, self._slots = live, {}
        self._queues = views.prefetching  # a helper prefetches
        self._told = {}
        return docs, live, views

    def _pass(
        self, queue: Queue, news: bool, joined: list[str] | None, started: datetime, fleet=None
    ) -> int:
        """Place the tasks of `queue`, oldest first, until it ends or no
        helper has room left: then the rest of it is not read, but, after
        news, for the tasks that do not say yet why they wait (they are told;
        looked for among `joined` only, when given).
        What it leaves pending is kept for the next pass (`_left`)."""
        first = next(queue, None)
        if first is None:
            self.waiting = False
            self._left = queue.unread()
            self._no_room.clear()
            return 0
        docs, live, views = fleet or self._fleet()
        at_start = signature(views) if no_room(views) else None
        # whether this pass tells every waiting task why (the watermark of
        # those it told), for the memory of a fleet with no room
        watermark = started - SKEW if news and joined is None else None
        placed = 0
        waiting = False
        left: list[dict] = []  # the tasks taken that still wait, as they are now
        for task in chain([first], queue):
            if all_full(views):
                # no slot free anywhere: a task that already says why it
                # waits stays as it is, unread; one new to the queue is told
                since = task["created_at"]
                found = self.tasks.unexplained(since, among=joined) if news else []
                for new in found:
                    self._dispatch(new, docs, views)
                if watermark is not None:
                    watermark = watermark_after(found, QUEUE_LIMIT, started)
                left.append(task)
                waiting = True
                break
            now_placed, after = self._dispatch(task, docs, views)
            if after is None and task["_id"] in self._kept:  # changed since it was kept
                more, after = self._dispatch_again(task["_id"], docs, views)
                now_placed += more
            placed += now_placed
            waiting = waiting or now_placed < task["open"]
            if after is not None and after["open"] > 0:
                left.append(after)
        else:  # every task it read was told, or placed: were they all that waited?
            if watermark is not None and queue.taken >= QUEUE_LIMIT:
                watermark = as_utc(task["created_at"])
        self.waiting = waiting
        told = self._write_told()
        unread, whole = queue.unread()
        self._left = ([told_why(t, told) for t in left + unread], whole)
        self._no_room.after_pass(at_start, views, started, watermark)
        return placed

    def _write_told(self) -> dict[str, str]:
        """Write the wait reasons the pass told, a write per reason, not per
        task; returns them by task id."""
        now = self.clock()
        for reason, ids in self._told.items():
            self.tasks.set_wait_reason(ids, reason, now)
        return {task_id: reason for reason, ids in self._told.items() for task_id in ids}

    def _tell_new(
        self, fleet, joined: list[str] | None, watermark: datetime, started: datetime
    ) -> int:
        """A pass after news in a fleet with no room, the same fleet the
        last pass that read the queue saw (no_room.py): the queue is not
        read, but the tasks new to it are told why they wait (`joined`, by
        id; else those created since `watermark`)."""
        docs, _, views = fleet
        if joined is not None:
            found = self.tasks.unexplained(EVER, among=joined)
        else:
            found = self.tasks.unexplained(watermark, among=None)
            self._no_room.told_since(watermark_after(found, QUEUE_LIMIT, started))
        placed = sum(self._dispatch(task, docs, views)[0] for task in found)
        self._write_told()
        if joined is None or self._left is None:
            self._left = None  # a kick's news may be anywhere: the next pass reads the queue
        else:
            self._left = (self._left[0], False)  # the new tasks are past those kept
        return placed

    def _dispatch(
        self, task: dict, docs: dict[str, dict], views: dict[str, HelperView]
    ) -> tuple[int, dict | None]:
        """Place the task's open replicas on the best helpers, one per helper;
        returns how many were placed and the task as it is now (None: someone
        else changed it)."""
        # `attempts` counts every assignment ever made: a task with none
        # has nothing to look up
        assignments = self.tasks.assignments_of(task["_id"]) if task["attempts"] else []
        tv = task_view(task, assignments)
        selection = select(tv, views)
        need = task["open"]
        min_helpers = task["spec"].get("min_helpers", 0)
        if task["attempts"] == 0 and len(selection.candidates) < min_helpers:
            reason = (
                f"waiting for {min_helpers} helpers, {len(selection.candidates)} can "
                f"take it now ({selection.wait_reason()})"
            )
            self._wait(task, reason)
            return 0, task
        refused = refused_lately(assignments, self.clock() - self.retry_after)
        on: set[str] = set()  # helpers given a replica now
        placed, passed, task = self._place_on(
            selection.candidates, task, need, refused, docs, views, tv, on
        )
        if task is not None and placed < need and self._queues and not tv.gpus and not min_helpers:
            # no free slot left for it: the queue of a helper that prefetches
            # (not for GPUs, which would wait idle; nor for helpers at once)
            tv = replace(tv, may_wait=True, running_on=tv.running_on | on)
            more, _, task = self._place_on(
                select(tv, views).candidates, task, need - placed, refused, docs, views, tv, on
            )
            placed += more
        if task is None:
            return placed, None  # someone else changed the task: leave it to them
        if placed < need:
            reason = selection.wait_reason()
            if selection.candidates:
                reason = f"{need - placed} of {need} replicas unplaced; {reason}"
            if passed:
                reason += f"; {passed} passed over for {self.retry_after.seconds} s after a failure"
            self._wait(task, reason)
        return placed, task

    def _dispatch_again(
        self, task_id: str, docs: dict[str, dict], views: dict[str, HelperView]
    ) -> tuple[int, dict | None]:
        """A task kept from the pass before was changed meanwhile (its first
        replica runs, say): read again, placed if it still wants replicas."""
        task = self.tasks.get(task_id)
        if task is None or task["open"] < 1 or task["state"] in TaskState.final():
            return 0, None
        return self._dispatch(task, docs, views)

    def _place_on(
        self,
        candidates,
        task: dict,
        need: int,
        refused: set[str],
        docs: dict[str, dict],
        views: dict[str, HelperView],
        tv: TaskView,
        on: set[str],
    ) -> tuple[int, int, dict | None]:
        """Place up to `need` replicas on `candidates`, best first, adding
        each helper given one to `on`; returns how many were placed, how many
        candidates were passed over, and the task as it is now (None:
        someone else changed it)."""
        placed = passed = 0
        if need <= 0:
            return placed, passed, task
        # stops as soon as `need` are placed: the ranking sorts the candidates
        # after its best only when the next is asked for
        for candidate in candidates:
            if candidate.helper.helper_id in refused:
                passed += 1  # it failed there a moment ago: the next best first
                continue
            ok, task = self._place(task, candidate.helper, docs, views, tv)
            if task is None:
                break
            placed += ok
            if ok:
                on.add(candidate.helper.helper_id)
                if placed == need:
                    break
        return placed, passed, task

    def _wait(self, task: dict, reason: str) -> None:
        """Record why the task waits, when that changed (a write per pass
        per waiting task would otherwise be the busiest thing the seeker
        does), at the end of the pass: the tasks told the same reason in one
        write (a queue submitted at once is told "no free slot" task by task)."""
        if task.get("wait_reason") != reason:
            self._told.setdefault(reason, []).append(task["_id"])

    def _place(
        self,
        task: dict,
        view: HelperView,
        docs: dict[str, dict],
        views: dict[str, HelperView],
        tv: TaskView,
    ) -> tuple[int, dict | None]:
        """Assign one replica and send it on its way; returns (1 if placed,
        the task now). Contacting the helper never holds up the pass: a
        pulling helper's poll is woken, a push runs on `pushes` (and, made
        inline, a failed one lets the pass try the next candidate)."""
        helper = docs[view.helper_id]
        reservation = reservation_for(tv, view)  # which devices, what share and memory
        pulls = helper.get("mode") == HelperMode.PULL.value and self.mailbox is not None
        via = HelperMode.PULL if pulls else HelperMode.PUSH
        used = self._slots.get(view.helper_id)
        if used is None:  # what the pass places there is added as it places it
            used = self._slots[view.helper_id] = slots_in_use(self._live, view.helper_id)
        slot = next(n for n in range(len(used) + 1) if n not in used)
        epoch = self.health.lease_epoch()  # the newest this seeker knows
        # an offer's echo from the change feed is not news: its poll is woken here
        offer_id = assignment_id(task["_id"], task["attempts"] + 1)
        unsay = self.mailbox.offering(offer_id) if pulls else _nothing
        try:
            assignment = self.tasks.assign(
                task, helper, self.clock(), reservation, via, slot, epoch
            )
        except SlotTaken as taken:  # another seeker placed there since this pass began
            log.info("task %s: %s was filled meanwhile", task["_id"], helper["name"])
            views[view.helper_id] = full(view)
            unsay()
            return 0, taken.task
        except Exception:  # maybe written: then its echo is news, and wakes the poll
            unsay()
            raise
        if assignment is None:
            unsay()
            return 0, None
        used.add(slot)
        attempt = assignment["attempt"]
        placed = after_assign(task, self.clock())
        if pulls:
            views[view.helper_id] = after_placing(view, reservation)
            self.mailbox.offer(helper["helper_id"])
            log.info("task %s attempt %d offered to %s", task["_id"], attempt, helper["name"])
            return 1, placed
        sent = self.pushes.submit(self._push, placed, helper, attempt, reservation)
        if not sent.done():  # on its way: the pass goes on, and a failure kicks the next
            sent.add_done_callback(self._pushed)
            views[view.helper_id] = after_placing(view, reservation)
            return 1, placed
        outcome, reopened = sent.result()
        if outcome == PushOutcome.ACCEPTED:
            views[view.helper_id] = after_placing(view, reservation)
            return 1, placed
        if outcome in (PushOutcome.BUSY, PushOutcome.UNRECOGNISED):
            views[view.helper_id] = full(view)
        elif outcome == PushOutcome.PURGED:
            views.pop(view.helper_id, None)
        return 0, reopened
