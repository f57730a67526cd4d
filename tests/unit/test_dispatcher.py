"""The dispatcher: placement, GPU pinning, pushes off the placement pass,
with a fake `push` (no HTTP) over mongomock stores and a fake clock
(failover, failure counting and purging: test_dispatch_failover.py)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from dispatch_fakes import GiB, add_helper, add_task, states

from seeker.control.dispatcher import Dispatcher
from seeker.placement.ranking import Ranking
from serving.http import Unreachable


def subset(d: dict, keys) -> dict:
    return {k: d[k] for k in keys}


# --- placement -------------------------------------------------------------------


def test_places_a_task_on_the_best_helper(dispatcher, tasks, push, clock, two_helpers):
    add_task(tasks, clock, cpus=1, env={"A": "1"}, command=["echo"], timeout=60)
    assert dispatcher.dispatch_pending() == 1
    assert push.names == ["big"]
    expected = {
        "task_id": "t1",
        "attempt": 1,
        "helper_id": "id-big",
        "image": "busybox:1.36",
        "command": ["echo"],
        "env": {"A": "1"},
        "resources": {"cpus": 1, "memory": GiB, "gpus": 0},
        "gpu_indices": [],
        "timeout": 60,
    }
    assert subset(push.calls[0][1], expected) == expected
    assert states(tasks, "t1") == [("big", "accepted")]
    (a,) = tasks.assignments_of("t1")
    assert a["reservation"] == {"cpus": 1, "memory": GiB, "gpus": 0, "gpu_indices": []}
    assert a["boot_id"] == "boot-big"
    assert tasks.get("t1")["state"] == "dispatched"


def test_placing_one_replica_does_not_rank_the_rest(
    dispatcher, tasks, helpers, push, clock, monkeypatch
):
    for name in ("a", "b", "c"):  # alike: all tied, the draw picks one
        add_helper(helpers, clock, name)
    sorts = []
    full_order = Ranking._full_order
    monkeypatch.setattr(Ranking, "_full_order", lambda r: sorts.append(1) or full_order(r))
    add_task(tasks, clock, replicas=2)  # two replicas: the second best is read, once sorted
    add_task(tasks, clock, "one")
    assert dispatcher.dispatch_pending() == 3
    assert len(push.names) == 3 and len(set(push.names[:2])) == 2
    assert sorts == [1]  # for the second replica of t1; none for "one"


def test_a_push_without_a_reply_is_still_accepted(dispatcher, tasks, helpers, clock):
    add_helper(helpers, clock, "only")
    dispatcher.push = lambda helper, payload: None
    add_task(tasks, clock)
    assert dispatcher.dispatch_pending() == 1
    (a,) = tasks.assignments_of("t1")
    assert a["state"] == "accepted" and "boot_id" not in a


def test_live_reservations_are_subtracted_across_passes(dispatcher, tasks, helpers, push, clock):
    add_helper(helpers, clock, "four-cpus", cpus=4, slots=8)
    add_task(tasks, clock, "a", cpus=3)
    assert dispatcher.dispatch_pending() == 1
    add_task(tasks, clock, "b", cpus=2)
    assert dispatcher.dispatch_pending() == 0
    assert tasks.get("b")["wait_reason"] == "1 helper: 1 not enough free CPUs"
    tasks.assignment_finished("a", "id-four-cpus", 1, {"status": "succeeded"}, clock())
    assert dispatcher.dispatch_pending() == 1
    assert push.names == ["four-cpus", "four-cpus"]


def test_constraints_pick_the_helper_with_the_labels(dispatcher, tasks, helpers, push, clock):
    add_helper(helpers, clock, "zone-a", memory=64 * GiB, labels={"zone": "a"})
    add_helper(helpers, clock, "zone-b", labels={"zone": "b"})
    add_task(tasks, clock, constraints={"zone": "b"})
    assert dispatcher.dispatch_pending() == 1
    assert push.names == ["zone-b"]
    add_task(tasks, clock, "t2", constraints={"zone": "c"})
    assert dispatcher.dispatch_pending() == 0
    assert tasks.get("t2")["wait_reason"] == "2 helpers: 2 labels do not match"


def test_slots_are_respected_within_one_pass(dispatcher, tasks, helpers, push, clock):
    add_helper(helpers, clock, "single", slots=1)
    add_task(tasks, clock, "first")
    add_task(tasks, clock, "second")
    assert dispatcher.dispatch_pending() == 1
    assert [p["task_id"] for _, p in push.calls] == ["first"]
    assert tasks.get("second")["wait_reason"] == "1 helper: 1 no free slot"
    tasks.assignment_finished("first", "id-single", 1, {"status": "succeeded"}, clock())
    assert dispatcher.dispatch_pending() == 1
    assert tasks.get("second")["state"] == "dispatched"


# --- GPUs ------------------------------------------------------------------------


def test_two_one_gpu_tasks_get_different_gpus_and_a_third_waits(
    dispatcher, tasks, helpers, push, clock
):
    add_helper(helpers, clock, "duo", slots=4, gpus=2)
    for name in ("a", "b", "c"):
        add_task(tasks, clock, name, gpus=1)
    assert dispatcher.dispatch_pending() == 2
    assert push.pinned() == {"a": [0], "b": [1]}
    assert tasks.get("c")["wait_reason"] == "1 helper: 1 not enough free GPUs"
    assert dispatcher.dispatch_pending() == 0  # the reservations hold across passes
    tasks.assignment_finished("b", "id-duo", 1, {"status": "succeeded"}, clock())
    assert dispatcher.dispatch_pending() == 1
    assert push.pinned()["c"] == [1]


def test_gpus_in_use_are_not_handed_out_twice(dispatcher, tasks, helpers, push, clock):
    add_helper(helpers, clock, "one-gpu", slots=2, gpus=1)
    add_task(tasks, clock, "a", gpus=1)
    add_task(tasks, clock, "b", gpus=1)
    assert dispatcher.dispatch_pending() == 1
    assert push.pinned() == {"a": [0]}


def test_a_task_needing_more_gpus_than_any_helper_stays_pending(
    dispatcher, tasks, helpers, push, clock
):
    add_helper(helpers, clock, "one-gpu", gpus=1)
    add_helper(helpers, clock, "cpu-only")
    add_task(tasks, clock, gpus=2)
    assert dispatcher.dispatch_pending() == 0
    assert push.calls == []
    task = tasks.get("t1")
    assert task["state"] == "pending" and task["attempts"] == 0
    assert task["wait_reason"] == "2 helpers: 2 not enough free GPUs"


# --- pushes off the placement pass -----------------------------------------------


def test_a_helper_that_never_answers_holds_up_only_the_push_sent_to_it(
    tasks, helpers, clock, health, kicks
):
    """Pushes run on a pool: the pass places the next task while the push to
    a hung helper waits for its timeout, which then fails over."""
    add_helper(helpers, clock, "hung", memory=32 * GiB)
    add_helper(helpers, clock, "ok", memory=4 * GiB, labels={"pool": "ok"})
    answer = threading.Event()

    def push(helper, payload):
        if helper["name"] == "hung":
            assert answer.wait(30), "the test never let the hung push time out"
            raise Unreachable("read timed out")
        return {"boot_id": "b"}

    pool = ThreadPoolExecutor(4)
    dispatcher = Dispatcher(tasks, helpers, push=push, clock=clock, health=health, pushes=pool)
    try:
        add_task(tasks, clock, "for-anyone")
        add_task(tasks, clock, "for-ok", constraints={"pool": "ok"})
        assert dispatcher.dispatch_pending() == 2  # returns with the hung push in flight
        assert states(tasks, "for-anyone") == [("hung", "pushing")]
        wait_for(lambda: states(tasks, "for-ok") == [("ok", "accepted")])
        assert kicks == []
        answer.set()  # the hung helper's timeout expires
        wait_for(lambda: states(tasks, "for-anyone") == [("hung", "push_failed")])
        wait_for(lambda: kicks == [1])  # the replica is open again: the next pass places it
        assert helpers.get("id-hung")["failures"] == 1
        dispatcher.dispatch_pending()
        wait_for(lambda: states(tasks, "for-anyone")[-1] == ("ok", "accepted"))
    finally:
        answer.set()
        pool.shutdown(wait=True)


def wait_for(predicate, seconds: float = 10) -> None:
    """Wait for the push pool's thread (an event would need hooks in the code)."""
    done = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("condition not met")
