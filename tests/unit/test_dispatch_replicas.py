"""The dispatcher with replicated tasks: replicas go to distinct helpers in one
pass, --min-helpers holds a task back, and a replica is never placed where the
task already ran; plus the pure parts that build what is placed."""

from __future__ import annotations

import pytest
from dispatch_fakes import FakePush, GiB, add_helper, add_task, states

from seeker.control.dispatch_state import assignment_payload, task_view
from seeker.control.dispatcher import Dispatcher
from seeker.models import TaskState
from seeker.placement.outcome import Decision


@pytest.fixture
def push() -> FakePush:
    return FakePush()


@pytest.fixture
def dispatcher(tasks, helpers, push, clock) -> Dispatcher:
    return Dispatcher(tasks, helpers, push=push, clock=clock)


@pytest.fixture
def three_helpers(helpers, clock):
    """Ranked big, mid, small for a 1 GiB task."""
    add_helper(helpers, clock, "big", memory=32 * GiB)
    add_helper(helpers, clock, "mid", memory=16 * GiB)
    add_helper(helpers, clock, "small", memory=4 * GiB)


# --- replicas on distinct helpers ---------------------------------------------------


def test_three_replicas_go_to_three_distinct_helpers_in_one_pass(
    dispatcher, tasks, push, clock, three_helpers
):
    add_task(tasks, clock, replicas=3)
    assert dispatcher.dispatch_pending() == 3
    assert push.names == ["big", "mid", "small"]
    assert [p["attempt"] for _, p in push.calls] == [1, 2, 3]
    assert states(tasks, "t1") == [("big", "accepted"), ("mid", "accepted"), ("small", "accepted")]
    task = tasks.get("t1")
    assert (task["state"], task["open"], task["attempts"]) == ("dispatched", 0, 3)
    assert list(tasks.queue()) == []


def test_three_replicas_on_two_helpers_place_two_and_keep_one_open(
    dispatcher, tasks, push, clock, two_helpers
):
    add_task(tasks, clock, replicas=3)
    assert dispatcher.dispatch_pending() == 2
    assert push.names == ["big", "small"]
    task = tasks.get("t1")
    assert (task["state"], task["open"], task["wanted"]) == ("dispatched", 1, 3)
    assert [t["_id"] for t in tasks.queue()] == ["t1"]
    assert dispatcher.dispatch_pending() == 0  # neither helper takes a second replica
    assert push.names == ["big", "small"]


def test_replicas_left_unplaced_say_why(dispatcher, tasks, clock, two_helpers):
    add_task(tasks, clock, replicas=3)
    dispatcher.dispatch_pending()
    assert tasks.get("t1")["wait_reason"] == "1 of 3 replicas unplaced; 2 helpers can take it"


def test_min_helpers_waits_until_enough_helpers_can_take_it(
    dispatcher, tasks, helpers, push, clock
):
    add_helper(helpers, clock, "gpu-a", labels={"zone": "a"})
    add_helper(helpers, clock, "gpu-b", labels={"zone": "b"})
    add_task(tasks, clock, replicas=2, min_helpers=2, constraints={"zone": "a"})
    assert dispatcher.dispatch_pending() == 0
    assert push.calls == []
    task = tasks.get("t1")
    assert (task["state"], task["attempts"], task["open"]) == ("pending", 0, 2)
    assert task["wait_reason"] == (
        "waiting for 2 helpers, 1 can take it now (2 helpers: 1 labels do not match)"
    )
    add_helper(helpers, clock, "gpu-c", labels={"zone": "a"})
    assert dispatcher.dispatch_pending() == 2
    assert sorted(push.names) == ["gpu-a", "gpu-c"]


# --- where a replica may go again ---------------------------------------------------


def test_a_replica_is_not_placed_where_the_task_ran_finished_or_lost(
    dispatcher, tasks, push, clock, three_helpers
):
    add_task(tasks, clock, replicas=2, max_attempts=2)
    assert dispatcher.dispatch_pending() == 2
    assert push.names == ["big", "mid"]
    tasks.assignment_finished("t1", "id-big", 1, {"status": "failed", "exit_code": 1}, clock())
    tasks.apply(tasks.get("t1"), Decision(None, 3), clock())  # one more replica
    tasks.assignment_lost("t1", 2, "helper mid restarted without it", clock())
    tasks.reopen("t1", 2, clock(), "attempt 2 lost")
    assert tasks.get("t1")["open"] == 2
    assert dispatcher.dispatch_pending() == 1
    assert push.names == ["big", "mid", "small"]
    assert tasks.get("t1")["open"] == 1


def test_a_retry_goes_to_another_helper(dispatcher, tasks, push, clock, two_helpers):
    add_task(tasks, clock, max_attempts=2)
    dispatcher.dispatch_pending()
    tasks.assignment_finished("t1", "id-big", 1, {"status": "failed", "exit_code": 1}, clock())
    tasks.apply(tasks.get("t1"), Decision(TaskState.PENDING, 2), clock())
    assert dispatcher.dispatch_pending() == 1
    assert push.names == ["big", "small"]


def test_a_single_replica_may_retry_where_it_failed_or_was_lost(
    dispatcher, tasks, helpers, push, clock
):
    add_helper(helpers, clock, "only")
    add_task(tasks, clock, max_attempts=2)
    dispatcher.dispatch_pending()
    tasks.assignment_finished("t1", "id-only", 1, {"status": "failed", "exit_code": 1}, clock())
    tasks.apply(tasks.get("t1"), Decision(TaskState.PENDING, 2), clock())
    assert dispatcher.dispatch_pending() == 1
    tasks.assignment_lost("t1", 2, "helper only restarted without it", clock())
    tasks.reopen("t1", 2, clock(), "attempt 2 lost")
    assert dispatcher.dispatch_pending() == 1
    assert push.names == ["only"] * 3


# --- pure parts --------------------------------------------------------------------

ASSIGNMENTS = [
    {"helper_id": "a", "state": "pushing"},
    {"helper_id": "b", "state": "accepted"},
    {"helper_id": "c", "state": "running"},
    {"helper_id": "d", "state": "finished", "status": "failed"},
    {"helper_id": "e", "state": "finished", "status": "timed_out"},
    {"helper_id": "f", "state": "finished", "status": "succeeded"},
    {"helper_id": "g", "state": "push_failed"},
    {"helper_id": "h", "state": "lost"},
]


def test_task_view_collects_live_and_failed_helpers():
    task = {"_id": "t1", "spec": {"image": "x", "resources": {"gpus": 1}}}
    view = task_view(task, ASSIGNMENTS)
    assert (view.task_id, view.gpus) == ("t1", 1)
    assert view.running_on == frozenset({"a", "b", "c"})
    assert view.failed_on == frozenset({"d", "e"})


def test_task_view_of_a_replicated_task_excludes_every_helper_that_ran_it():
    task = {"_id": "t1", "spec": {"image": "x", "replicas": 2}}
    view = task_view(task, ASSIGNMENTS)
    assert view.running_on == frozenset("abcdefh")  # a failed push never ran: g may
    assert view.failed_on == frozenset({"d", "e"})


def test_assignment_payload_defaults():
    task = {"_id": "t9", "spec": {"image": "x", "resources": {"gpus": 1}}}
    payload = assignment_payload(task, {"helper_id": "h"}, 3, {"gpus": 1, "gpu_indices": [2]})
    assert (payload["task_id"], payload["attempt"], payload["helper_id"]) == ("t9", 3, "h")
    assert payload["resources"] == {"cpus": 0, "memory": 0, "gpus": 1}
    assert payload["gpu_indices"] == [2]
    assert (payload["command"], payload["env"], payload["timeout"]) == ([], {}, None)
    assert payload["pull"] == "if-missing"


def test_assignment_payload_takes_resources_from_the_reservation():
    spec = {"image": "x", "resources": {"cpus": 99, "memory": 99, "gpus": 9}}
    reservation = {"cpus": 1.5, "memory": GiB, "gpus": 2, "gpu_indices": [0, 3]}
    payload = assignment_payload({"_id": "t", "spec": spec}, {"helper_id": "h"}, 1, reservation)
    assert payload["resources"] == {"cpus": 1.5, "memory": GiB, "gpus": 2}
    assert payload["gpu_indices"] == [0, 3]


def test_a_replica_pushed_while_its_task_was_cancelled_is_stopped(tasks, helpers, push, clock):
    stopped = []
    dispatcher = Dispatcher(
        tasks,
        helpers,
        push=push,
        clock=clock,
        stop=lambda h, task_id, attempt: stopped.append((h["name"], task_id, attempt)),
    )
    add_helper(helpers, clock, "big", memory=32 * GiB)
    add_task(tasks, clock)
    push.during["big"] = lambda: tasks.cancel("t1", clock())  # a user cancels mid-push
    assert dispatcher.dispatch_pending() == 1
    assert stopped == [("big", "t1", 1)]
    assert tasks.get("t1")["state"] == "cancelled"


def test_a_replica_of_a_live_task_is_not_stopped(tasks, helpers, push, clock):
    stopped = []
    dispatcher = Dispatcher(
        tasks, helpers, push=push, clock=clock, stop=lambda *args: stopped.append(args)
    )
    add_helper(helpers, clock, "big", memory=32 * GiB)
    add_task(tasks, clock)
    assert dispatcher.dispatch_pending() == 1
    assert stopped == []


def test_a_task_cancelled_during_a_pass_gets_no_more_replicas(tasks, helpers, push, clock):
    dispatcher = Dispatcher(tasks, helpers, push=push, clock=clock)
    for name in ("a", "b", "c"):
        add_helper(helpers, clock, name)
    add_task(tasks, clock, replicas=3)
    first = {}

    def cancel_once():
        if not first:
            first["done"] = True
            tasks.cancel("t1", clock())

    for name in ("a", "b", "c"):
        push.during[name] = cancel_once
    assert dispatcher.dispatch_pending() == 1  # the one pushed when the cancel came
    assert len(push.calls) == 1
    assert len(tasks.assignments_of("t1")) == 1


def test_a_push_cut_off_by_a_dead_seeker_is_sent_again_later(tasks, helpers, push, clock):
    dispatcher = Dispatcher(tasks, helpers, push=push, clock=clock)
    helper = add_helper(helpers, clock, "big", memory=32 * GiB)
    add_task(tasks, clock)
    tasks.assign(tasks.get("t1"), helper, clock())  # recorded; the seeker died before pushing
    assert dispatcher.resume_stale_pushes() == 0  # too recent: the push may be under way
    clock.advance(21)
    assert dispatcher.resume_stale_pushes() == 1
    assert push.names == ["big"]
    assert states(tasks, "t1") == [("big", "accepted")]
    assert dispatcher.resume_stale_pushes() == 0


def test_a_stale_push_to_a_helper_gone_since_goes_back_to_be_placed(tasks, helpers, push, clock):
    dispatcher = Dispatcher(tasks, helpers, push=push, clock=clock)
    helper = add_helper(helpers, clock, "gone", memory=32 * GiB)
    add_task(tasks, clock)
    tasks.assign(tasks.get("t1"), helper, clock())
    helpers.remove("id-gone")
    clock.advance(21)
    assert dispatcher.resume_stale_pushes() == 1
    assert push.calls == []
    assert states(tasks, "t1") == [("gone", "push_failed")]
    assert tasks.get("t1")["state"] == "pending" and tasks.get("t1")["open"] == 1
