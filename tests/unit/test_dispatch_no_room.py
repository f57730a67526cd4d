"""A fleet with no room (every online helper full, or none online): a pass
after news that finds the same fleet the last pass saw, still with no room,
does not read the queue; it tells only the tasks new to the queue why they
wait. Every REREAD, or when the fleet changes, the queue is read again.
(seeker/control/no_room.py)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from dispatch_fakes import FakePush, add_helper, add_task
from test_dispatch_queue import Taken

from seeker.control.dispatcher import Dispatcher
from seeker.control.no_room import REREAD, SKEW, NoRoom, watermark_after
from seeker.placement.views import HelperView
from seeker.store.tasks import QUEUE_LIMIT

FULL = "1 helper: 1 no free slot"


@pytest.fixture
def dispatcher(tasks, helpers, clock) -> Dispatcher:
    return Dispatcher(tasks, helpers, push=FakePush(), clock=clock)


def searches(tasks) -> list:
    """Each search for the tasks that do not say why they wait: (since, among)."""
    made, unexplained = [], tasks.unexplained

    def search(since, among):
        made.append((since, among))
        return unexplained(since, among=among)

    tasks.unexplained = search
    return made


def full_fleet(dispatcher, tasks, helpers, clock, waiting=5) -> Taken:
    """One helper of one slot, taken, and `waiting` tasks behind it, told
    why they wait by two passes (the second saw no room throughout)."""
    add_helper(helpers, clock, "only", slots=1)
    for n in range(waiting + 1):
        add_task(tasks, clock, task_id=f"t{n}")
    assert dispatcher.dispatch_pending() == 1
    assert dispatcher.dispatch_pending() == 0
    return Taken(tasks)


def test_a_kick_in_the_same_full_fleet_reads_no_queue_and_tells_the_new(
    dispatcher, tasks, helpers, clock
):
    taken = full_fleet(dispatcher, tasks, helpers, clock)
    made = searches(tasks)
    started = clock()
    assert dispatcher.dispatch_pending() == 0  # the sweep
    assert taken.ids == [] and taken.closed == 0  # no query of the queue
    # a search for the new since the last pass (less SKEW), not since the oldest waiting
    assert made == [(started - SKEW, None)]
    add_task(tasks, clock, task_id="late")  # submitted, its id not known
    assert dispatcher.dispatch_pending() == 0
    assert taken.ids == [] and tasks.get("late")["wait_reason"] == FULL
    add_task(tasks, clock, task_id="known")
    assert dispatcher.dispatch_pending(True, ["known"]) == 0  # a submit: by id
    assert made[-1][1] == ["known"] and tasks.get("known")["wait_reason"] == FULL
    assert taken.ids == []


def test_the_queue_is_read_again_every_reread(tasks, helpers, clock):
    # helpers heard from as often as the liveness asks, here within 5 minutes
    patient = Dispatcher(tasks, helpers, push=FakePush(), clock=clock, liveness=5 * REREAD)
    taken = full_fleet(patient, tasks, helpers, clock)
    clock.advance(REREAD.total_seconds() - 3)
    patient.dispatch_pending()
    assert taken.ids == []
    clock.advance(3)
    patient.dispatch_pending()
    assert taken.ids == ["t1"]  # the head of the queue, read again


def test_a_task_given_back_is_placed_first_when_room_comes(dispatcher, tasks, helpers, clock):
    taken = full_fleet(dispatcher, tasks, helpers, clock)
    # a task older than the watermark with no reason: as a replica given back leaves it
    tasks.create("back", {"image": "busybox:1.36"}, clock() - timedelta(hours=1))
    dispatcher.dispatch_pending()  # its give-back's kick: settled, the queue not read
    assert taken.ids == [] and tasks.get("back")["wait_reason"] is None
    tasks.assignment_finished("t0", "id-only", 1, {"status": "succeeded"}, clock())
    assert dispatcher.dispatch_pending(news=False) == 1  # room: the queue read afresh
    assert taken.ids[0] == "back" and tasks.get("back")["state"] == "dispatched"


def test_a_helper_joining_is_room_and_the_queue_is_read(dispatcher, tasks, helpers, clock):
    for n in range(3):
        add_task(tasks, clock, task_id=f"t{n}")
    dispatcher.dispatch_pending()
    dispatcher.dispatch_pending()  # an empty fleet, the same throughout
    assert tasks.get("t2")["wait_reason"] == "no helpers registered"
    taken = Taken(tasks)
    dispatcher.dispatch_pending()
    assert taken.ids == []
    add_helper(helpers, clock, "new", slots=4)
    assert dispatcher.dispatch_pending() == 3
    assert taken.ids == ["t0", "t1", "t2"]


def test_a_helper_gone_offline_is_a_new_fleet_whose_reasons_are_told(
    dispatcher, tasks, helpers, clock
):
    full_fleet(dispatcher, tasks, helpers, clock)
    clock.advance(dispatcher.liveness.total_seconds() + 1)  # silent: offline
    taken = Taken(tasks)
    dispatcher.dispatch_pending()
    assert taken.ids  # read again: what each waits for has changed
    assert tasks.get("t3")["wait_reason"] == "1 helper: 1 offline"


def test_a_backlog_past_what_a_pass_reads_is_told_in_the_passes_after(tasks, helpers, clock):
    patient = Dispatcher(tasks, helpers, push=FakePush(), clock=clock, liveness=5 * REREAD)
    for n in range(QUEUE_LIMIT + 50):
        add_task(tasks, clock, task_id=f"t{n:03d}")  # no helper: none can run
    untold = {"state": "pending", "wait_reason": None}
    patient.dispatch_pending()  # reads and tells the oldest QUEUE_LIMIT
    assert tasks.tasks.count_documents(untold) == 50
    made = searches(tasks)
    patient.dispatch_pending()  # the sweep: no queue read, the rest told
    assert tasks.tasks.count_documents(untold) == 0
    last_read = tasks.get(f"t{QUEUE_LIMIT - 1:03d}")["created_at"]
    assert made == [(last_read, None)]  # from the last task the pass read, not its start
    clock.advance(REREAD.total_seconds())
    patient.dispatch_pending()  # reads the queue again: its oldest QUEUE_LIMIT
    patient.dispatch_pending()
    # the search goes on from where the passes before got, not from the
    # last of the oldest QUEUE_LIMIT again
    assert made[-1][0] > last_read


def view(name, online=True, running=1, slots=1, prefetch=0) -> HelperView:
    return HelperView(name, name, slots=slots, running=running, prefetch=prefetch, online=online)


def test_the_memory_stands_only_for_a_pass_that_saw_one_fleet_with_no_room(clock):
    full, other = {"a": view("a")}, {"a": view("a"), "b": view("b")}
    memo = NoRoom()
    started = clock()
    # a pass that began with room (None), or with another fleet: nothing remembered
    memo.after_pass(None, full, started, started)
    memo.after_pass(frozenset({("b", True)}), full, started, started)
    assert not memo.may_settle(clock())
    at_start = frozenset({("a", True)})
    memo.after_pass(at_start, full, started, None)  # a pass on room alone looked for none
    assert not memo.may_settle(clock())
    memo.after_pass(at_start, full, started, started - SKEW)
    assert memo.may_settle(clock()) and memo.settles(full) == started - SKEW
    assert memo.settles(other) is None  # another fleet
    assert memo.settles({"a": view("a", running=0)}) is None  # room
    assert memo.settles({"a": view("a", slots=1, prefetch=1)}) is None  # room in its queue
    memo.told_since(started)
    assert memo.settles(full) == started
    memo.after_pass(at_start, {"a": view("a", running=0)}, started, started)  # room at the end
    assert not memo.may_settle(clock())


def test_a_search_that_found_its_limit_leaves_told_only_what_it_found(clock):
    found = [{"created_at": clock() - timedelta(minutes=m)} for m in (3, 2)]
    assert watermark_after(found, 2, clock()) == clock() - timedelta(minutes=2)
    assert watermark_after(found, 3, clock()) == clock() - SKEW
