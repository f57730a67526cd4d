"""The dispatcher when helpers fail: offline past the liveness window,
failover to the next helper, failure counting and purging, and the dispatch
loop surviving errors; with a fake `push` (no HTTP) over mongomock stores and
a fake clock."""

from __future__ import annotations

import threading

from dispatch_fakes import GiB, add_helper, add_task, states

from seeker.control.dispatch_loop import DispatchLoop
from seeker.control.dispatcher import Dispatcher
from serving.http import ApiError, Unreachable


def test_a_helper_not_seen_within_the_liveness_is_offline(dispatcher, tasks, helpers, clock):
    add_helper(helpers, clock, "quiet")
    clock.advance(45)
    add_task(tasks, clock, "t1")  # advances the clock one more second
    assert dispatcher.dispatch_pending() == 0
    assert tasks.get("t1")["wait_reason"] == "1 helper: 1 offline"
    helpers.contact_ok("id-quiet", clock())
    assert dispatcher.dispatch_pending() == 1


def test_a_helper_seen_exactly_at_the_liveness_deadline_is_online(
    dispatcher, tasks, helpers, clock
):
    add_task(tasks, clock, "t1")
    add_helper(helpers, clock, "quiet")
    clock.advance(45)
    assert dispatcher.dispatch_pending() == 1


def test_unreachable_helper_fails_over_to_the_next(
    dispatcher, tasks, helpers, push, clock, two_helpers
):
    add_task(tasks, clock)
    push.fail("big", Unreachable("connection refused"))
    assert dispatcher.dispatch_pending() == 1
    assert push.names == ["big", "small"]
    assert states(tasks, "t1") == [("big", "push_failed"), ("small", "accepted")]
    assert "connection refused" in tasks.assignments_of("t1")[0]["error"]
    assert helpers.get("id-big")["failures"] == 1
    assert helpers.get("id-small")["failures"] == 0


def test_purge_after_exactly_three_failed_contacts(dispatcher, tasks, helpers, push, clock):
    add_helper(helpers, clock, "only")
    push.fail("only", Unreachable("timed out"))
    add_task(tasks, clock)
    for failures in (1, 2):
        assert dispatcher.dispatch_pending() == 0
        assert helpers.get("id-only")["failures"] == failures
        clock.advance(6)  # a helper where the task just failed is passed over for 5 s
    assert dispatcher.dispatch_pending() == 0
    assert helpers.get("id-only") is None
    assert push.names == ["only"] * 3
    task = tasks.get("t1")
    assert task["state"] == "pending" and task["attempts"] == 3
    assert dispatcher.dispatch_pending() == 0
    assert tasks.get("t1")["wait_reason"] == "no helpers registered"


def test_three_failed_contacts_in_one_pass_purge_the_helper(
    dispatcher, tasks, helpers, push, clock, two_helpers
):
    push.fail("big", Unreachable("timed out"))
    for n in range(3):
        add_task(tasks, clock, f"t{n}")
    dispatcher.dispatch_pending()
    assert push.names[:5] == ["big", "small", "big", "small", "big"]
    assert helpers.get("id-big") is None
    assert [h["name"] for h in helpers.list()] == ["small"]
    add_task(tasks, clock, "t3")
    dispatcher.dispatch_pending()
    assert push.names[-1] == "small"
    for n in range(4):
        assert states(tasks, f"t{n}")[-1] == ("small", "accepted")


def test_the_push_that_purges_a_helper_still_fails_over_in_the_same_pass(
    dispatcher, tasks, push, clock, two_helpers
):
    push.fail("big", Unreachable("timed out"))
    for n in range(3):
        add_task(tasks, clock, f"t{n}")
    assert dispatcher.dispatch_pending() == 3
    assert push.names == ["big", "small"] * 3
    assert states(tasks, "t2") == [("big", "push_failed"), ("small", "accepted")]


def test_purging_a_helper_requeues_the_work_it_had(dispatcher, tasks, helpers, push, clock, kicks):
    add_helper(helpers, clock, "big", memory=32 * GiB, slots=8)  # first even with one running
    add_helper(helpers, clock, "small", memory=4 * GiB)
    add_task(tasks, clock, "running-there")
    dispatcher.dispatch_pending()
    assert states(tasks, "running-there") == [("big", "accepted")]
    push.fail("big", Unreachable("timed out"))
    for n in range(3):
        add_task(tasks, clock, f"t{n}")
    dispatcher.dispatch_pending()
    assert helpers.get("id-big") is None
    (lost,) = tasks.assignments_of("running-there")
    assert lost["state"] == "lost"
    assert lost["error"] == "helper big purged after 3 failed contacts"
    assert tasks.get("running-there")["state"] == "pending"
    assert kicks == [1]
    dispatcher.dispatch_pending()  # t2, whose push purged big, waits for it too (xfail above)
    assert states(tasks, "running-there")[-1] == ("small", "accepted")


def test_a_success_resets_the_failure_count(dispatcher, tasks, helpers, push, clock, two_helpers):
    push.fail("big", Unreachable("refused"), Unreachable("refused"))
    add_task(tasks, clock, "a")
    add_task(tasks, clock, "b")
    dispatcher.dispatch_pending()
    assert helpers.get("id-big")["failures"] == 2
    push.failures.clear()
    helpers.remove("id-small")  # so that "big", now ranked lower, is asked
    add_task(tasks, clock, "c")
    dispatcher.dispatch_pending()
    assert push.names[-1] == "big"
    assert helpers.get("id-big")["failures"] == 0


def test_a_busy_helper_is_not_a_failed_contact(
    dispatcher, tasks, helpers, push, clock, two_helpers
):
    add_task(tasks, clock, "t1")
    add_task(tasks, clock, "t2")
    push.fail("big", ApiError(429, "helper is full"))
    assert dispatcher.dispatch_pending() == 2
    assert states(tasks, "t1") == [("big", "push_failed"), ("small", "accepted")]
    assert helpers.get("id-big")["failures"] == 0
    assert push.names == ["big", "small", "small"]  # full for the rest of the pass


def test_a_helper_that_does_not_know_its_credential_yet_is_skipped_not_counted(
    dispatcher, tasks, helpers, push, clock, two_helpers
):
    # it registered a moment ago and has not read the answer, or it lost its
    # credential and is joining again: no run, but no failed contact either
    seen_before = helpers.get("id-big")["last_seen"]
    add_task(tasks, clock, "t1")
    add_task(tasks, clock, "t2")
    clock.advance(5)
    push.fail("big", ApiError(401, "invalid token"))
    assert dispatcher.dispatch_pending() == 2
    assert states(tasks, "t1") == [("big", "push_failed"), ("small", "accepted")]
    big = helpers.get("id-big")
    assert big["failures"] == 0 and big["last_seen"] == seen_before  # not a sign of life
    assert push.names == ["big", "small", "small"]  # skipped for the rest of the pass


def test_a_server_error_counts_as_a_failed_contact(
    dispatcher, tasks, helpers, push, clock, two_helpers
):
    add_task(tasks, clock)
    push.fail("big", ApiError(503, "unavailable"))
    dispatcher.dispatch_pending()
    assert helpers.get("id-big")["failures"] == 1


def test_when_every_helper_fails_the_task_waits(dispatcher, tasks, push, clock, two_helpers):
    add_task(tasks, clock)
    push.fail("big", Unreachable("refused"))
    push.fail("small", ApiError(429, "full"))
    assert dispatcher.dispatch_pending() == 0
    task = tasks.get("t1")
    assert task["state"] == "pending" and task["attempts"] == 2
    assert task["wait_reason"] == "1 of 1 replicas unplaced; 2 helpers can take it"


def test_wait_reason_when_every_helper_fails_reads_well(dispatcher, tasks, push, clock, helpers):
    add_helper(helpers, clock, "only")
    add_task(tasks, clock)
    push.fail("only", Unreachable("refused"))
    dispatcher.dispatch_pending()
    reason = tasks.get("t1")["wait_reason"]
    assert not reason.rstrip().endswith(":")
    assert reason == "1 of 1 replicas unplaced; 1 helper can take it"


def test_no_helpers(dispatcher, tasks, clock):
    add_task(tasks, clock)
    assert dispatcher.dispatch_pending() == 0
    assert tasks.get("t1")["wait_reason"] == "no helpers registered"


def test_nothing_pending_pushes_nothing(dispatcher, helpers, push, clock):
    add_helper(helpers, clock, "idle")
    assert dispatcher.dispatch_pending() == 0
    assert push.calls == []


def test_a_task_cancelled_during_a_failed_push_is_not_retried(
    dispatcher, tasks, push, clock, two_helpers
):
    add_task(tasks, clock)
    push.during["big"] = lambda: tasks.cancel("t1", clock())
    push.fail("big", Unreachable("refused"))
    assert dispatcher.dispatch_pending() == 0
    assert push.names == ["big"]
    assert tasks.get("t1")["state"] == "cancelled"


def test_the_default_health_purges_after_three(tasks, helpers, push, clock):
    dispatcher = Dispatcher(tasks, helpers, push=push, clock=clock)
    assert dispatcher.health.purge_after == 3
    add_helper(helpers, clock, "only")
    push.fail("only", Unreachable("refused"))
    add_task(tasks, clock)
    for _ in range(3):
        dispatcher.dispatch_pending()
        clock.advance(6)  # a helper where the task just failed is passed over for 5 s
    assert helpers.list() == []


def test_dispatch_loop_runs_on_kick_and_survives_errors():
    failed, passed = threading.Event(), threading.Event()

    class Flaky:
        def dispatch_pending(self, news=True, joined=None):
            if not failed.is_set():
                failed.set()
                raise RuntimeError("database hiccup")
            passed.set()
            return 0

    loop = DispatchLoop(Flaky()).start()
    try:
        loop.kick()
        assert failed.wait(5)
        loop.kick()
        assert passed.wait(5), "the loop stopped after an error"
    finally:
        loop.stop()
    assert not loop.alive()
