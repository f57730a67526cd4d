"""The store contract's concurrency section: two seekers (two sets of store
objects over one database) whose writes interleave at the worst moment, made
to happen deterministically by a collection that runs the other seeker's
step just before or just after one of its calls. Every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import FakeClock

from seeker.control.dispatcher import Dispatcher
from seeker.control.health import HelperHealth
from seeker.store.give_backs import stale_placements_query
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore

GiB = 1024**3
SPEC = {"image": "busybox:1.36", "resources": {"cpus": 0, "memory": 0, "gpus": 0}}


class Hooked:
    """A collection whose first call of `method` runs `hook` before (or
    after, `after=True`) it, once."""

    def __init__(self, collection, method: str, hook, after: bool = False):
        self._collection, self._method, self._hook, self._after = collection, method, hook, after

    def __getattr__(self, name):
        real = getattr(self._collection, name)
        if name != self._method or self._hook is None:
            return real

        def call(*args, **kwargs):
            hook, self._hook = self._hook, None
            if not self._after:
                hook()
            result = real(*args, **kwargs)
            if self._after:
                result = list(result) if name == "find" else result
                hook()
            return result

        return call


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def seekers(mongo_db, clock):
    """Two seekers' task and helper stores over the same database."""
    a, b = TaskStore(mongo_db), TaskStore(mongo_db)
    a.ensure_indexes()
    return a, b, HelperStore(mongo_db), HelperStore(mongo_db)


def helper(name: str, slots: int = 4) -> dict:
    return {"helper_id": f"id-{name}", "name": name, "url": f"http://{name}:7072", "slots": slots}


def live(tasks: TaskStore, task_id: str) -> list[str]:
    return [a["state"] for a in tasks.live_assignment_docs() if a["task_id"] == task_id]


def test_a_replica_placed_while_another_is_given_back_keeps_the_task_out_of_pending(seekers, clock):
    a, b, _, _ = seekers
    a.create("t1", SPEC, clock())
    first = a.assign(a.get("t1"), helper("one"), clock())
    a.assignment_lost("t1", first["attempt"], "helper one silent", clock())

    def b_places_the_replica_again():
        b.assign(b.get("t1"), helper("two"), clock())

    # a gives the lost replica back, reads that nothing is live, and before
    # it moves the task to pending, b places the replica on another helper
    a.assignments = Hooked(a.assignments, "find", b_places_the_replica_again, after=True)
    a.reopen("t1", 1, clock(), "attempt 1 lost")
    task = b.get("t1")
    assert live(b, "t1") == ["pushing"]
    assert task["state"] == "dispatched"  # not pending while a replica runs
    assert task["open"] == 0


def test_a_replica_given_back_while_another_is_being_placed_keeps_the_task_out_of_pending(
    seekers, clock
):
    a, b, _, _ = seekers
    a.create("t1", {**SPEC, "replicas": 2}, clock())
    first = a.assign(a.get("t1"), helper("one"), clock())

    def a_loses_the_first_meanwhile():
        a.assignment_lost("t1", first["attempt"], "helper one silent", clock())
        a.reopen("t1", 1, clock(), "attempt 1 lost")

    # b has counted its attempt on the task and not yet written the
    # assignment when a gives the first replica back
    b.assignments = Hooked(b.assignments, "insert_one", a_loses_the_first_meanwhile)
    b.assign(b.get("t1"), helper("two"), clock())
    assert live(a, "t1") == ["pushing"]
    assert a.get("t1")["state"] == "dispatched"


class SeekerDied(Exception):
    pass


def die():
    raise SeekerDied


def test_an_attempt_whose_assignment_was_never_written_is_given_back(seekers, clock):
    a, b, _, _ = seekers
    a.create("t1", SPEC, clock())
    a.assignments = Hooked(a.assignments, "insert_one", die)
    with pytest.raises(SeekerDied):  # between the task's update and the insert
        a.assign(a.get("t1"), helper("one"), clock())
    task = b.get("t1")
    assert (task["state"], task["attempts"], task["open"]) == ("dispatched", 1, 0)
    clock.advance(30)
    assert b.reconcile_placements(before=clock() - timedelta(seconds=60), now=clock()) == 0
    clock.advance(60)
    assert b.reconcile_placements(before=clock() - timedelta(seconds=60), now=clock()) == 1
    task = b.get("t1")
    assert (task["state"], task["open"]) == ("pending", 1)
    (void,) = b.assignments_of("t1")
    assert (void["state"], void["error"]) == ("push_failed", "the seeker stopped while placing it")
    assert b.reconcile_placements(before=clock(), now=clock()) == 0  # once


def test_reconcile_placements_looks_at_unfinished_tasks_only(seekers, clock):
    # each of these counts attempt 1 and has no assignment for it
    a, b, _, _ = seekers
    for task_id, state in (("d", "dispatched"), ("p", "pending"), ("s", "succeeded")):
        a.create(task_id, SPEC, clock())
        a.tasks.update_one({"_id": task_id}, {"$set": {"state": state, "attempts": 1}})
    clock.advance(60)
    assert b.reconcile_placements(before=clock(), now=clock()) == 2
    assert sorted(x["task_id"] for x in b.assignments.find()) == ["d", "p"]
    assert b.get("s")["state"] == "succeeded"


def test_the_search_for_stale_placements_names_the_unfinished_states_first(clock):
    # SecantusDB plans a query by its first field, and walked every task
    # ever run for `$nin` of the final states (bench/findings.md 47)
    query = stale_placements_query(clock())
    assert next(iter(query)) == "state"
    assert query["state"] == {"$in": ("pending", "dispatched", "running")}


# --- a replica given back once, whichever seeker stops where ----------------


def reconcile(tasks: TaskStore, clock) -> int:
    return tasks.reconcile_give_backs(before=clock() - timedelta(seconds=15), now=clock())


def open_and_returned(tasks: TaskStore, task_id: str) -> tuple:
    task = tasks.get(task_id)
    return task["state"], task["open"], task.get("returned", [])


def owed(tasks: TaskStore) -> list[str]:
    return [x["_id"] for x in tasks.assignments.find({"owed": {"$exists": True}})]


def test_a_seeker_that_found_the_slot_taken_and_stopped_before_giving_the_replica_back(
    seekers, clock
):
    # what test_several_seekers met: b's placement found the slot taken,
    # wrote the attempt as a failed push and was killed before its give-back
    a, b, _, _ = seekers
    a.create("t0", SPEC, clock())
    a.create("t1", SPEC, clock())
    a.assign(a.get("t0"), helper("one"), clock(), slot=0)
    b.tasks = Hooked(b.tasks, "find_one_and_update", die)
    with pytest.raises(SeekerDied):
        b.assign(b.get("t1"), helper("one"), clock(), slot=0)
    assert open_and_returned(a, "t1") == ("dispatched", 0, [])
    clock.advance(60)
    # every attempt has its assignment: nothing for reconcile_placements
    assert a.reconcile_placements(before=clock(), now=clock()) == 0
    assert reconcile(a, clock) == 1
    assert open_and_returned(a, "t1") == ("pending", 1, [1])
    assert "slot 0 of one was taken" in a.get("t1")["wait_reason"]
    assert owed(a) == []
    assert reconcile(a, clock) == 0  # once


def test_a_lost_run_whose_seeker_stopped_before_giving_it_back(seekers, clock):
    a, b, _, _ = seekers
    a.create("t1", SPEC, clock())
    a.assign(a.get("t1"), helper("one"), clock(), slot=0)
    a.assignment_lost("t1", 1, "helper one silent", clock())  # and a stops
    assert owed(b) == ["t1.1"]
    clock.advance(10)
    assert reconcile(b, clock) == 0  # a may still be about to
    clock.advance(10)
    assert reconcile(b, clock) == 1
    assert open_and_returned(b, "t1") == ("pending", 1, [1])
    # a's own give-back, late, or anyone's repeated, counts nothing
    assert a.reopen("t1", 1, clock(), "attempt 1 lost") is None
    assert open_and_returned(b, "t1") == ("pending", 1, [1])


def test_a_replica_given_back_is_not_given_back_again(seekers, clock):
    a, b, _, _ = seekers
    for task_id in ("t1", "t2"):
        a.create(task_id, SPEC, clock())
        a.assign(a.get(task_id), helper("one"), clock())
    a.push_failed("t1", 1, "refused", clock())
    a.assignment_lost("t2", 1, "helper one silent", clock())
    a.cancel("t2", clock())  # ended before its replica was given back
    assert sorted(owed(b)) == ["t1.1", "t2.1"]
    clock.advance(30)
    assert reconcile(b, clock) == 0
    assert open_and_returned(b, "t1") == ("pending", 1, [1])
    assert open_and_returned(b, "t2") == ("cancelled", 0, [])
    assert owed(b) == []


def test_a_give_back_made_while_the_reconciler_looks_counts_once(seekers, clock):
    a, b, _, _ = seekers
    a.create("t1", SPEC, clock())
    a.assign(a.get("t1"), helper("one"), clock())
    a.assignment_lost("t1", 1, "helper one silent", clock())
    clock.advance(30)

    def a_gives_it_back():  # a was slow, not stopped
        a.reopen("t1", 1, clock(), "attempt 1 lost")

    b.tasks = Hooked(b.tasks, "find", a_gives_it_back, after=True)
    assert reconcile(b, clock) == 0
    assert open_and_returned(b, "t1") == ("pending", 1, [1])


@pytest.mark.parametrize(
    "when",
    [("find", True), ("find_one_and_update", False)],
    ids=["after-reading-the-task", "before-giving-back"],
)
def test_a_run_taken_back_while_the_reconciler_looks_is_not_given_back(seekers, clock, when):
    a, b, _, _ = seekers
    a.create("t1", {**SPEC, "replicas": 2}, clock())
    for name in ("one", "two"):
        a.assign(a.get("t1"), helper(name), clock())
    a.assignment_running("t1", "id-two", 2, clock())  # the task stays running throughout
    a.assignment_lost("t1", 1, "helper one silent", clock())
    clock.advance(30)

    def given_back_and_revived():  # a was slow; the helper answers again meanwhile
        a.reopen("t1", 1, clock(), "attempt 1 lost")
        assert a.revive("t1", 1, "id-one", clock())

    b.tasks = Hooked(b.tasks, when[0], given_back_and_revived, after=when[1])
    assert reconcile(b, clock) == 0
    assert open_and_returned(b, "t1") == ("running", 0, [])
    assert live(b, "t1") == ["running", "running"]
    assert owed(b) == []


def test_a_revived_run_lost_again_is_given_back_again(seekers, clock):
    a, b, _, _ = seekers
    a.create("t1", SPEC, clock())
    a.assign(a.get("t1"), helper("one"), clock())
    for _ in range(2):
        a.assignment_lost("t1", 1, "helper one silent", clock())
        a.reopen("t1", 1, clock(), "attempt 1 lost")
        assert open_and_returned(b, "t1") == ("pending", 1, [1])
        assert a.revive("t1", 1, "id-one", clock())
        assert open_and_returned(b, "t1") == ("running", 0, [])


def test_a_run_whose_give_back_a_stopped_seeker_owes_is_not_revived(seekers, clock):
    a, b, _, _ = seekers
    a.create("t1", {**SPEC, "replicas": 2}, clock())
    for name in ("one", "two"):
        a.assign(a.get("t1"), helper(name), clock())
    a.push_failed("t1", 2, "refused", clock())  # given back: open 1
    a.assignment_lost("t1", 1, "helper one silent", clock())  # and a stops
    # the open replica is attempt 2's: attempt 1's run is not to take it
    assert b.revive("t1", 1, "id-one", clock()) is False
    assert live(b, "t1") == []
    clock.advance(30)
    assert reconcile(b, clock) == 1
    assert open_and_returned(b, "t1") == ("pending", 2, [2, 1])


def test_a_revival_whose_seeker_stopped_before_taking_the_run_back(seekers, clock):
    a, b, _, _ = seekers
    a.create("t1", SPEC, clock())
    a.assign(a.get("t1"), helper("one"), clock())
    a.assignment_lost("t1", 1, "helper one silent", clock())
    a.reopen("t1", 1, clock(), "attempt 1 lost")
    clock.advance(30)
    assert reconcile(b, clock) == 0  # given back: no longer owed
    assert owed(b) == []
    a.tasks = Hooked(a.tasks, "update_one", die, after=True)
    with pytest.raises(SeekerDied):  # the replica taken, the run not yet
        a.revive("t1", 1, "id-one", clock())
    assert open_and_returned(b, "t1") == ("running", 0, [])
    assert live(b, "t1") == []
    clock.advance(10)
    assert reconcile(b, clock) == 0  # a may be about to take the run back
    clock.advance(10)
    assert reconcile(b, clock) == 1
    assert open_and_returned(b, "t1") == ("pending", 1, [1])


def test_a_helper_that_answered_while_its_purge_was_decided_stays(seekers, clock):
    a, b, helpers_a, helpers_b = seekers
    helpers_a.register(helper("flaky"), clock())
    for _ in range(2):
        helpers_a.contact_failed("id-flaky", clock(), "timed out")

    def it_registers_at_b():
        helpers_b.register(helper("flaky"), clock())  # its heartbeat: failures start over

    health = HelperHealth(helpers_a, a, clock, purge_after=3)
    helpers_a.helpers = Hooked(helpers_a.helpers, "find_one_and_update", it_registers_at_b, True)
    assert health.contact_failed("id-flaky", "flaky", "timed out") is False
    assert helpers_b.get("id-flaky")["failures"] == 0


def test_two_dispatchers_never_fill_a_helper_beyond_its_slots(seekers, clock):
    a, b, helpers_a, helpers_b = seekers
    helpers_a.register({**helper("two-slots", slots=2), "resources": {"cpus": 8}}, clock())
    for n in range(4):
        a.create(f"t{n}", SPEC, clock.advance(1))
    pushed: list[str] = []
    push = lambda h, p: pushed.append(p["task_id"]) or {"boot_id": "b"}  # noqa: E731
    first = Dispatcher(a, helpers_a, push=push, clock=clock)
    second = Dispatcher(b, helpers_b, push=push, clock=clock)

    # the second runs a whole pass after the first has read the fleet and
    # the tasks, before the first places anything
    a.tasks = Hooked(a.tasks, "update_one", lambda: second.dispatch_pending())
    first.dispatch_pending()
    on_helper = [x for x in b.live_assignment_docs() if x["helper_id"] == "id-two-slots"]
    assert len(on_helper) == 2
    assert sorted(x["slot"] for x in on_helper) == ["id-two-slots/0", "id-two-slots/1"]
    assert len(pushed) == 2
    for n in range(4):
        assert len(live(b, f"t{n}")) <= 1


def test_two_dispatchers_never_run_a_task_beyond_its_replicas(seekers, clock):
    a, b, helpers_a, helpers_b = seekers
    for name in ("h1", "h2", "h3", "h4"):
        helpers_a.register({**helper(name), "resources": {"cpus": 8}}, clock())
    a.create("t1", {**SPEC, "replicas": 2}, clock())
    push = lambda h, p: {"boot_id": "b"}  # noqa: E731
    first = Dispatcher(a, helpers_a, push=push, clock=clock)
    second = Dispatcher(b, helpers_b, push=push, clock=clock)
    a.tasks = Hooked(a.tasks, "update_one", lambda: second.dispatch_pending())
    first.dispatch_pending()
    assert len(live(b, "t1")) == 2
    assert b.get("t1")["open"] == 0
