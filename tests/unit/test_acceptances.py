"""A push's answer recorded a moment later, or not at all when the helper's
report of the run comes first (seeker/control/acceptances.py): each case
with an injected clock, no sleeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dispatch_fakes import Counting, FakePush, add_helper, add_task

from seeker.control.acceptances import Acceptances
from seeker.control.dispatcher import Dispatcher
from seeker.control.health import HelperHealth
from seeker.control.operations import Seeker
from seeker.helper_models import AssignmentEvent

AFTER = timedelta(seconds=2)


@pytest.fixture
def stopped() -> list[tuple[str, str, int]]:
    return []


@pytest.fixture
def env(tasks, helpers, clock, stopped):
    health = HelperHealth(helpers, tasks, clock)
    answers = Acceptances(
        tasks,
        health,
        clock,
        stop=lambda h, task_id, attempt: stopped.append((h["name"], task_id, attempt)),
        after=AFTER,
    )
    push = FakePush()
    dispatcher = Dispatcher(tasks, helpers, push, clock, health=health, acceptances=answers)
    seeker = Seeker(tasks, helpers, clock, health=health, heard=answers.heard)
    add_helper(helpers, clock, "big")
    add_task(tasks, clock)
    return dispatcher, seeker, answers, push


def report(state: str, **fields) -> AssignmentEvent:
    return AssignmentEvent(helper_id="id-big", attempt=1, state=state, **fields)


def assignment(tasks) -> dict:
    (a,) = tasks.assignments_of("t1")
    return a


def test_an_answer_waits_then_is_recorded_with_the_helper_process(env, tasks, clock):
    dispatcher, _, answers, _ = env
    assert dispatcher.dispatch_pending() == 1
    taken_at = clock()
    assert assignment(tasks)["state"] == "pushing" and answers.waiting() == 1
    clock.advance(1.9)
    assert answers.record_due() == 0  # not yet
    clock.advance(0.1)
    assert answers.record_due() == 1
    a = assignment(tasks)
    assert (a["state"], a["boot_id"], a["accepted_at"]) == ("accepted", "boot-big", taken_at)
    assert answers.waiting() == 0


@pytest.mark.parametrize("state", ["running", "finished"])
def test_a_report_of_the_run_first_records_the_answer_in_its_own_write(env, tasks, clock, state):
    dispatcher, seeker, answers, _ = env
    dispatcher.dispatch_pending()
    taken_at = clock()
    clock.advance(0.6)
    tasks.assignments = calls = Counting(tasks.assignments)
    fields = {"status": "succeeded", "exit_code": 0} if state == "finished" else {}
    seeker.assignment_event("t1", report(state, **fields))
    clock.advance(5)
    assert answers.record_due() == 0
    assert calls.calls.count("update_one") == 1  # the report's, no `accepted` apart
    a = assignment(tasks)
    assert (a["state"], a["accepted_at"], a["boot_id"]) == (state, taken_at, "boot-big")


def test_a_report_read_before_the_pushs_answer_spares_it_too(env, tasks, clock):
    """An instant run's `finished` can overtake the answer to its push."""
    _, seeker, answers, _ = env
    assert answers.heard("t1", 1) == {}  # reported, nothing waited yet
    answers.took("t1", {"helper_id": "id-big", "name": "big"}, 1, "boot-big")
    assert answers.waiting() == 0
    clock.advance(5)
    assert answers.record_due() == 0


def test_a_task_cancelled_while_the_answer_waits_has_its_run_stopped(env, tasks, clock, stopped):
    dispatcher, _, answers, _ = env
    dispatcher.dispatch_pending()
    tasks.cancel("t1", clock())  # withdraws what is still `pushing`
    clock.advance(2)
    assert answers.record_due() == 0  # refused: the replica was withdrawn
    assert stopped == [("big", "t1", 1)] and answers.waiting() == 0
    assert assignment(tasks)["state"] == "pushing"  # never accepted: the sweep ends it


def test_a_withdrawn_replicas_report_of_its_run_is_refused_and_the_run_stopped(
    env, tasks, clock, stopped
):
    """The task ended before the answer was recorded: its helper's report
    of the run does not make the replica live again, and the run is stopped
    there (a pushed helper is asked through the seeker's helper client)."""
    dispatcher, seeker, answers, _ = env
    asked = []
    seeker.helper_client = lambda h: type("C", (), {"cancel": lambda _, t, n: asked.append(t)})()
    dispatcher.dispatch_pending()
    tasks.cancel("t1", clock())
    answer = seeker.assignment_event("t1", report("running"))
    assert answer["recorded"] is False
    assert assignment(tasks)["state"] == "pushing"
    assert asked == ["t1"]
    clock.advance(2)
    answers.record_due()  # the answer was heard of: nothing waits
    assert stopped == []


def test_a_helper_restarted_before_the_answer_was_recorded_has_lost_the_run(
    env, tasks, helpers, clock
):
    dispatcher, _, answers, _ = env
    dispatcher.dispatch_pending()
    helpers.register({"helper_id": "id-big", "name": "big", "boot_id": "boot-2"}, clock())
    clock.advance(2)
    answers.record_due()
    a = assignment(tasks)
    assert (a["state"], a["boot_id"]) == ("lost", "boot-big")
    assert tasks.get("t1")["open"] == 1  # its replica is to place again


def test_answers_due_together_read_their_helper_once_after_all_are_written(
    env, tasks, helpers, clock, monkeypatch
):
    """Two queued runs of one helper: both answers fall due in one tick, the
    helper is read once, after both writes, and both runs are found lost
    to its restart."""
    dispatcher, _, answers, _ = env
    add_task(tasks, clock, "t2")
    assert dispatcher.dispatch_pending() == 2
    helpers.register({"helper_id": "id-big", "name": "big", "boot_id": "boot-2"}, clock())
    read, get = [], helpers.get

    def counted(helper_id):
        read.append([a["state"] for t in ("t1", "t2") for a in tasks.assignments_of(t)])
        return get(helper_id)

    monkeypatch.setattr(answers.health.helpers, "get", counted)
    clock.advance(2)
    assert answers.record_due() == 2
    assert read == [["accepted", "accepted"]]  # once, with both written
    for task_id in ("t1", "t2"):
        (a,) = tasks.assignments_of(task_id)
        assert (a["state"], a["boot_id"]) == ("lost", "boot-big")


def test_stopping_records_what_waits_and_what_comes_after_at_once(env, tasks, clock):
    dispatcher, _, answers, _ = env
    dispatcher.dispatch_pending()
    assert answers.close() == 1
    assert assignment(tasks)["state"] == "accepted"
    answers.took("t1", {"helper_id": "id-big", "name": "big"}, 1, "boot-big")  # a late push
    assert answers.waiting() == 0


def test_without_a_delay_the_answer_is_recorded_at_once(tasks, helpers, clock):
    dispatcher = Dispatcher(tasks, helpers, FakePush(), clock)
    add_helper(helpers, clock, "big")
    add_task(tasks, clock)
    dispatcher.dispatch_pending()
    assert assignment(tasks)["state"] == "accepted"
