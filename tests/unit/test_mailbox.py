"""The mailbox of pulling helpers: an offer is handed out on every poll until
acknowledged, the acknowledgement names the one helper process that runs it,
an offer not taken within the ack timeout is a failed contact and goes to
the next best helper, and what a helper reports it runs is kept, revived or
stopped. Over mongomock stores with a fake clock: no sleeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dispatch_fakes import FakePush, GiB, add_helper, add_task, states

from seeker.control.dispatcher import Dispatcher
from seeker.control.mailbox import Mailbox


def payload(task: dict, helper: dict, attempt: int, reservation: dict) -> dict:
    return {"task_id": task["_id"], "attempt": attempt, "helper_id": helper["helper_id"]}


@pytest.fixture
def woken() -> list[str]:
    return []


@pytest.fixture
def mailbox(tasks, health, clock, woken) -> Mailbox:
    return Mailbox(tasks, health, clock, payload, wake=woken.append)


@pytest.fixture
def push() -> FakePush:
    return FakePush()


@pytest.fixture
def dispatcher(tasks, helpers, push, clock, health, mailbox) -> Dispatcher:
    return Dispatcher(
        tasks,
        helpers,
        push=push,
        clock=clock,
        health=health,
        liveness=timedelta(seconds=45),
        mailbox=mailbox,
    )


def puller(helpers, clock, name: str, **fields) -> dict:
    return add_helper(helpers, clock, name, mode="pull", url=None, **fields)


def running_two(dispatcher, mailbox, tasks, helpers, clock) -> dict:
    """A pulling helper (nat) that took tasks a and b: the helper."""
    helper = puller(helpers, clock, "nat")
    add_task(tasks, clock, "a")
    add_task(tasks, clock, "b")
    dispatcher.dispatch_pending()
    for t in ("a", "b"):
        mailbox.acknowledge(t, "id-nat", 1, "boot-1")
    return helper


def keys(work: dict) -> list[str]:
    return [f"{a['task_id']}.{a['attempt']}" for a in work["assignments"]]


def test_an_offer_to_a_pulling_helper_wakes_its_poll_and_is_never_pushed(
    dispatcher, tasks, helpers, clock, push, woken
):
    puller(helpers, clock, "nat")
    add_task(tasks, clock)
    assert dispatcher.dispatch_pending() == 1
    assert push.calls == []
    assert woken == ["id-nat"]
    (a,) = tasks.assignments_of("t1")
    assert (a["state"], a["via"]) == ("pushing", "pull")
    assert tasks.get("t1")["state"] == "dispatched"


def test_an_offer_is_handed_out_on_every_poll_until_acknowledged(
    dispatcher, mailbox, tasks, helpers, clock
):
    helper = puller(helpers, clock, "nat")
    add_task(tasks, clock)
    dispatcher.dispatch_pending()
    first = mailbox.collect(helper, "boot-1", [], [])
    assert keys(first) == ["t1.1"]
    assert keys(mailbox.collect(helper, "boot-1", [], [])) == ["t1.1"]  # the answer was lost
    assert mailbox.acknowledge("t1", "id-nat", 1, "boot-1") is True
    assert states(tasks, "t1") == [("nat", "accepted")]
    assert keys(mailbox.collect(helper, "boot-1", ["t1.1"], [])) == []  # it has it


def test_the_same_process_acknowledging_twice_runs_it_once_and_no_other_process_does(
    dispatcher, mailbox, tasks, helpers, clock
):
    helper = puller(helpers, clock, "nat")
    add_task(tasks, clock)
    dispatcher.dispatch_pending()
    assert mailbox.acknowledge("t1", "id-nat", 1, "boot-1") is True
    # its answer was lost: the offer comes again to the same process, which
    # does not have it yet, acknowledges again and is told to run it
    assert keys(mailbox.collect(helper, "boot-1", [], [])) == ["t1.1"]
    assert mailbox.acknowledge("t1", "id-nat", 1, "boot-1") is True
    # a restarted process of that helper is never handed it, nor told to run it
    assert keys(mailbox.collect(helper, "boot-2", [], [])) == []
    assert mailbox.acknowledge("t1", "id-nat", 1, "boot-2") is False
    # nor is a run it has finished, while the seeker has not heard of its end
    assert keys(mailbox.collect(helper, "boot-1", [], ["t1.1"])) == []


def test_an_offer_not_taken_in_time_is_a_failed_contact_and_goes_to_the_next_best(
    dispatcher, mailbox, tasks, helpers, clock, kicks
):
    puller(helpers, clock, "big", memory=32 * GiB)
    puller(helpers, clock, "small", memory=4 * GiB)
    add_task(tasks, clock)
    dispatcher.dispatch_pending()
    assert states(tasks, "t1") == [("big", "pushing")]
    clock.advance(9)
    assert mailbox.expire() == 0  # 10 s to take it
    clock.advance(2)
    assert mailbox.expire() == 1
    assert helpers.get("id-big")["failures"] == 1
    assert kicks  # the dispatcher is woken to place it again
    dispatcher.dispatch_pending()
    assert states(tasks, "t1") == [("big", "push_failed"), ("small", "pushing")]
    (failed, _) = tasks.assignments_of("t1")
    assert failed["error"] == "big did not take the assignment within 10 s"


def test_three_offers_not_taken_purge_a_pulling_helper(dispatcher, mailbox, tasks, helpers, clock):
    puller(helpers, clock, "silent")
    for n in range(3):
        add_task(tasks, clock, f"t{n}")
        dispatcher.dispatch_pending()
        clock.advance(11)
        assert mailbox.expire() == 1
    assert helpers.get("id-silent") is None


def test_a_taken_offer_expires_nothing(dispatcher, mailbox, tasks, helpers, clock):
    puller(helpers, clock, "nat")
    add_task(tasks, clock)
    dispatcher.dispatch_pending()
    mailbox.acknowledge("t1", "id-nat", 1, "boot-1")
    clock.advance(60)
    assert mailbox.expire() == 0
    assert helpers.get("id-nat")["failures"] == 0


def test_a_refused_offer_is_placed_again_without_counting_a_failure(
    dispatcher, mailbox, tasks, helpers, clock
):
    puller(helpers, clock, "big", memory=32 * GiB)
    puller(helpers, clock, "small", memory=4 * GiB)
    add_task(tasks, clock)
    dispatcher.dispatch_pending()
    assert mailbox.refuse("t1", "id-big", 1, "big refused it: helper is full") is True
    assert helpers.get("id-big")["failures"] == 0
    dispatcher.dispatch_pending()  # the next best, not big again at once
    assert states(tasks, "t1") == [("big", "push_failed"), ("small", "pushing")]
    # another helper cannot refuse what was offered to small
    assert mailbox.refuse("t1", "id-big", 2, "not mine") is False


def test_an_offer_of_a_task_cancelled_meanwhile_is_not_handed_out(
    dispatcher, mailbox, tasks, helpers, clock
):
    helper = puller(helpers, clock, "nat")
    add_task(tasks, clock)
    dispatcher.dispatch_pending()
    tasks.cancel("t1", clock())
    assert mailbox.collect(helper, "boot-1", [], []) == {"assignments": [], "stop": []}
    clock.advance(11)
    mailbox.expire()
    assert helpers.get("id-nat")["failures"] == 0  # not the helper's doing


class Reads:
    """The mailbox's reads of the database, counted by what they look for."""

    def __init__(self, monkeypatch, tasks, health):
        self.offers = self.checks = 0
        offers_for, reconcile = tasks.offers_for, health.reconcile

        def counted_offers(*args):
            self.offers += 1
            return offers_for(*args)

        def counted_reconcile(*args):
            self.checks += 1
            return reconcile(*args)

        monkeypatch.setattr(tasks, "offers_for", counted_offers)
        monkeypatch.setattr(health, "reconcile", counted_reconcile)


def test_a_busy_helpers_polls_on_its_connection_read_nothing_without_news(
    dispatcher, mailbox, tasks, helpers, clock, monkeypatch, health
):
    """A pulling helper polls again as soon as it has taken its work and
    when each run ends: those polls bring nothing new unless something
    happened since, and read nothing (bench/findings.md, 42)."""
    helper = puller(helpers, clock, "nat")
    reads = Reads(monkeypatch, tasks, health)
    add_task(tasks, clock, "a")
    dispatcher.dispatch_pending()
    assert keys(mailbox.collect(helper, "boot-1", [], [], fresh=False)) == ["a.1"]  # news
    assert (reads.offers, reads.checks) == (1, 1)  # and its runs, first heard of here
    mailbox.acknowledge("a", "id-nat", 1, "boot-1")
    for _ in range(3):  # it has it: nothing to look for, nothing to check
        clock.advance(1)
        work = mailbox.collect(helper, "boot-1", ["a.1"], [], fresh=False)
        assert work == {"assignments": [], "stop": []}
    assert (reads.offers, reads.checks) == (1, 1)
    # the answer to an acknowledgement was lost: what it was handed is not
    # among its runs, so the next poll looks, and hands it out again
    add_task(tasks, clock, "b")
    dispatcher.dispatch_pending()
    mailbox.collect(helper, "boot-1", ["a.1"], [], fresh=False)
    mailbox.acknowledge("b", "id-nat", 1, "boot-1")
    work = mailbox.collect(helper, "boot-1", ["a.1"], [], fresh=False)
    assert keys(work) == ["b.1"] and reads.offers == 3
    mailbox.collect(helper, "boot-1", ["a.1"], ["b.1"], fresh=False)  # it ran and ended
    assert reads.offers == 3
    # a new connection looks for both (what was heard meanwhile went elsewhere)
    mailbox.collect(helper, "boot-1", ["a.1"], ["b.1"], fresh=True)
    assert (reads.offers, reads.checks) == (4, 2)


def test_a_run_whose_task_ended_is_stopped_on_news_or_within_a_heartbeat_interval(
    dispatcher, mailbox, tasks, helpers, clock, health, woken
):
    helper = running_two(dispatcher, mailbox, tasks, helpers, clock)
    running = ["a.1", "b.1"]
    assert mailbox.collect(helper, "boot-1", running, [], fresh=True)["stop"] == []
    tasks.cancel("a", clock())  # and the news of it went astray
    assert mailbox.collect(helper, "boot-1", running, [], fresh=False)["stop"] == []
    woken.clear()
    mailbox.stop("id-nat")  # news: a task it may run ended
    assert woken == ["id-nat"]  # its waiting poll is answered
    assert mailbox.collect(helper, "boot-1", running, [], fresh=False)["stop"] == ["a.1"]
    # that answer was lost: it still reports a.1, which it is told again
    assert mailbox.collect(helper, "boot-1", running, [], fresh=False)["stop"] == ["a.1"]
    running = ["b.1"]  # it stopped it
    tasks.cancel("b", clock())  # news lost: checked again within a heartbeat interval
    clock.advance(health.heartbeat_interval() - 1)
    assert mailbox.collect(helper, "boot-1", running, [], fresh=False)["stop"] == []
    clock.advance(1)
    work = mailbox.collect(helper, "boot-1", running, [], fresh=False)
    assert work["stop"] == ["b.1"]


# --- what a helper reports it runs ----------------------------------------------


def test_runs_of_tasks_that_ended_or_that_are_not_the_helpers_are_stopped(
    dispatcher, mailbox, tasks, helpers, clock
):
    helper = running_two(dispatcher, mailbox, tasks, helpers, clock)
    tasks.cancel("b", clock())
    work = mailbox.collect(helper, "boot-1", ["a.1", "b.1", "ghost.1"], [])
    assert work["stop"] == ["b.1", "ghost.1"]


def test_a_run_lost_while_its_helper_was_away_is_kept_if_nobody_took_its_place(
    dispatcher, mailbox, tasks, helpers, clock, health
):
    helper = puller(helpers, clock, "nat")
    add_task(tasks, clock)
    dispatcher.dispatch_pending()
    mailbox.acknowledge("t1", "id-nat", 1, "boot-1")
    tasks.assignment_running("t1", "id-nat", 1, clock())
    health.lose_work("id-nat", "helper nat silent")  # a partition
    assert tasks.get("t1")["state"] == "pending"
    work = mailbox.collect(helper, "boot-1", ["t1.1"], [])  # it comes back, still running it
    assert work["stop"] == []
    assert states(tasks, "t1") == [("nat", "running")]
    task = tasks.get("t1")
    assert (task["state"], task["open"]) == ("running", 0)
    assert dispatcher.dispatch_pending() == 0  # nothing to place: it runs once


def test_a_run_lost_while_its_helper_was_away_is_stopped_if_it_ran_elsewhere(
    dispatcher, mailbox, tasks, helpers, clock, health
):
    helper = puller(helpers, clock, "nat", memory=32 * GiB)
    puller(helpers, clock, "other", memory=4 * GiB)
    add_task(tasks, clock)
    dispatcher.dispatch_pending()
    mailbox.acknowledge("t1", "id-nat", 1, "boot-1")
    health.poll_dropped("id-nat", clock(), still_here=False)  # offline, its work lost
    dispatcher.dispatch_pending()  # placed again, on the other helper
    assert states(tasks, "t1") == [("nat", "lost"), ("other", "pushing")]
    work = mailbox.collect(helper, "boot-1", ["t1.1"], [])
    assert work["stop"] == ["t1.1"]
    assert states(tasks, "t1") == [("nat", "lost"), ("other", "pushing")]
    assert tasks.get("t1")["open"] == 0  # one replica, not two


def test_a_helper_whose_poll_dropped_and_did_not_come_back_loses_its_work(
    dispatcher, mailbox, tasks, helpers, clock, health
):
    puller(helpers, clock, "nat")
    add_task(tasks, clock)
    dispatcher.dispatch_pending()
    mailbox.acknowledge("t1", "id-nat", 1, "boot-1")
    dropped_at = clock()
    clock.advance(5)
    assert health.poll_dropped("id-nat", dropped_at, still_here=True) == 0
    helpers.poll_connected("id-nat", clock())  # it polled another seeker meanwhile
    assert health.poll_dropped("id-nat", dropped_at, still_here=False) == 0
    clock.advance(1)
    later_drop = clock()
    clock.advance(5)
    assert health.poll_dropped("id-nat", later_drop, still_here=False) == 1
    assert states(tasks, "t1") == [("nat", "lost")]
    assert "poll connection of nat dropped" in tasks.assignments_of("t1")[0]["error"]
    add_task(tasks, clock, "t2")
    dispatcher.dispatch_pending()  # gone: offline until it polls on a new connection
    assert tasks.assignments_of("t2") == []
    assert tasks.get("t2")["wait_reason"] == "1 helper: 1 offline"
    clock.advance(1)
    helpers.poll_connected("id-nat", clock())
    assert dispatcher.dispatch_pending() >= 1


def test_with_no_offer_lately_untaken_offers_are_looked_for_every_30_s(
    dispatcher, mailbox, tasks, helpers, clock
):
    calls = []
    real = tasks.unacknowledged
    tasks.unacknowledged = lambda before: calls.append(before) or real(before)
    mailbox.expire()  # the first look
    for _ in range(29):
        clock.advance(1)
        mailbox.expire()
    assert len(calls) == 1
    clock.advance(1)
    mailbox.expire()
    assert len(calls) == 2
    puller(helpers, clock, "nat")
    add_task(tasks, clock)
    dispatcher.dispatch_pending()  # an offer: now every second
    for _ in range(3):
        clock.advance(1)
        mailbox.expire()
    assert len(calls) == 5
