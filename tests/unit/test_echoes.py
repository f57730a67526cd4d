"""A seeker's own submits, offers, runs' ends and events, heard back
through the change feed, start nothing a second time: the writer started it in
process. Another seeker's still do. Over a real change stream (SecantusDB)."""

from __future__ import annotations

import uuid

import pytest
from dispatch_fakes import add_helper
from pymongo.errors import AutoReconnect
from test_changes import SPEC, Heard, barrier, feed_of, stream_open

from seeker.control import echoes as echoes_module
from seeker.control.dispatcher import Dispatcher
from seeker.control.echoes import Echoes
from seeker.control.health import HelperHealth
from seeker.control.mailbox import Mailbox
from seeker.control.operations import Seeker
from seeker.helper_models import AssignmentEvent
from seeker.models import TaskSpec
from seeker.store.events import EventLog
from seeker.store.helpers import HelperStore
from seeker.store.tasks import SlotTaken, TaskStore


class Ticks:
    """A monotonic clock that moves when told."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_write_said_is_recognised_once():
    echoes = Echoes()
    echoes.expect("tasks", ["t1", "t2"])
    assert echoes.mine("tasks", "t1")
    assert not echoes.mine("tasks", "t1")  # a second change of t1 is news
    assert not echoes.mine("assignments", "t2")  # another collection's t2
    assert echoes.mine("tasks", "t2")
    assert len(echoes) == 0


def test_a_write_never_heard_is_forgotten_after_a_while():
    ticks = Ticks()
    echoes = Echoes(clock=ticks, keep=60.0)
    echoes.expect("tasks", ["failed-insert"])
    ticks.now += 59
    echoes.expect("tasks", ["t2"])
    assert len(echoes) == 2
    ticks.now += 2  # the first was said 61 s ago
    echoes.expect("tasks", ["t3"])
    assert len(echoes) == 2
    assert not echoes.mine("tasks", "failed-insert")
    assert echoes.mine("tasks", "t2") and echoes.mine("tasks", "t3")


def test_a_write_said_again_is_kept_from_the_second_time(monkeypatch):
    ticks = Ticks()
    echoes = Echoes(clock=ticks, keep=60.0)
    echoes.expect("assignments", ["t1.1", "t2.1"])
    ticks.now += 50
    echoes.expect("assignments", ["t1.1"])  # said again: kept from now
    ticks.now += 20
    echoes.expect("assignments", ["t3.1"])
    assert echoes.mine("assignments", "t1.1")
    assert not echoes.mine("assignments", "t2.1")


def test_a_document_said_twice_before_its_first_echo_has_two_echoes():
    echoes = Echoes()
    echoes.expect("tasks", ["t1"])  # submitted
    echoes.expect("tasks", ["t1"])  # and ended, before the submit's echo came
    assert echoes.mine("tasks", "t1") and echoes.mine("tasks", "t1")
    assert not echoes.mine("tasks", "t1")
    echoes.expect("tasks", ["t2"])
    echoes.expect("tasks", ["t2"])
    echoes.forget("tasks", ["t2"])  # the second write was not made
    assert echoes.mine("tasks", "t2") and not echoes.mine("tasks", "t2")


def test_a_write_forgotten_is_news():
    echoes = Echoes()
    echoes.expect("events", ["e1", "e2"])
    echoes.forget("events", ["e1"])
    assert not echoes.mine("events", "e1")
    assert echoes.mine("events", "e2")


def test_no_more_than_most_are_kept(monkeypatch):
    monkeypatch.setattr(echoes_module, "MOST", 3)
    echoes = Echoes()
    echoes.expect("tasks", [f"t{i}" for i in range(5)])
    assert len(echoes) == 3
    assert not echoes.mine("tasks", "t0") and echoes.mine("tasks", "t4")


@pytest.fixture
def shared_db(secantus_client):
    name = f"test_{uuid.uuid4().hex}"
    yield secantus_client[name]
    secantus_client.drop_database(name)


def finished(attempt: int = 1) -> AssignmentEvent:
    return AssignmentEvent(
        helper_id="h1",
        attempt=attempt,
        state="finished",
        status="succeeded",
        exit_code=0,
        output_digest="sha256:" + "a" * 64,
    )


def seeker_of(db, clock, echoes: Echoes, **kwargs) -> tuple:
    """A seeker's stores, operations and dispatcher on `db`, and one pushed
    helper of 2 slots (h1), whose pushes are all taken."""
    tasks, helpers = TaskStore(db), HelperStore(db, clock)
    seeker = Seeker(tasks, helpers, clock, echoes=echoes, **kwargs)
    helpers.register({"helper_id": "h1", "name": "gpu-1", "url": "http://h:1", "slots": 2}, clock())
    dispatcher = Dispatcher(tasks, helpers, push=lambda h, p: {"boot_id": "b"}, clock=clock)
    return tasks, helpers, seeker, dispatcher


def test_the_feed_starts_no_pass_for_this_seekers_own_writes(shared_db, clock):
    """The feed hears changes in the order they were made: once it has
    heard a change made after this seeker's writes, it has heard those
    writes."""
    heard, echoes = Heard(), Echoes()
    feed = feed_of(shared_db, heard)
    feed.echoes = echoes
    feed.room = heard.recorder("room")
    here = []
    tasks, helpers, seeker, dispatcher = seeker_of(
        shared_db, clock, echoes, kick=lambda: here.append("kick")
    )
    seeker.room = lambda: here.append("room")
    feed.start()
    try:
        assert feed.streams is True
        stream_open(helpers, heard)
        mine = seeker.submit(TaskSpec(image="busybox"))["task_id"]
        assert here == ["kick"]  # placement started here, at once
        barrier(helpers, heard, "x")
        # the feed heard the submit, and passed over it
        assert heard.calls["kick"] == heard.calls["joined"] == []
        assert len(echoes) == 0
        tasks.create("theirs", SPEC, clock())  # submitted to another seeker
        heard.wait("joined")

        dispatcher.dispatch_pending()
        placed = {a["task_id"]: a for a in tasks.assignments.find({})}
        assert set(placed) == {mine, "theirs"}
        seeker.assignment_event(mine, finished())  # ended here: room made here
        assert here == ["kick", "room"]
        barrier(helpers, heard, "y")
        assert heard.calls["room"] == []
        assert len(echoes) == 0
        theirs = placed["theirs"]  # ended by another seeker
        tasks.assignment_finished("theirs", "h1", theirs["attempt"], {}, clock())
        heard.wait("room")
    finally:
        feed.stop()


def test_a_seeker_tells_its_echoes_of_each_task_of_an_array(mock_db, clock):
    echoes = Echoes()
    seeker = Seeker(TaskStore(mock_db), HelperStore(mock_db, clock), clock, echoes=echoes)
    answer = seeker.submit_array(TaskSpec(image="busybox"), 3)
    assert len(echoes) == 3
    assert all(echoes.mine("tasks", t["task_id"]) for t in answer["tasks"])


def test_the_feed_wakes_no_wait_for_an_event_published_here(shared_db, clock):
    """The publisher here answers the requests waiting for the next event;
    the insert the feed brings back had each of them read the log again
    and find nothing (0.74 reads a container at 4 slots: finding 37)."""
    heard, echoes = Heard(), Echoes()
    feed = feed_of(shared_db, heard)
    feed.echoes = echoes
    here = EventLog(shared_db, clock, echoes=echoes)
    told = []
    here.watch(told.append)
    helpers = HelperStore(shared_db, clock)
    feed.start()
    try:
        assert feed.streams is True
        stream_open(helpers, heard)
        here.publish("task.succeeded", task_id="t1")
        assert [e["task_id"] for e in told] == ["t1"]  # told in process
        barrier(helpers, heard, "x")
        assert heard.calls["new_event"] == []  # and the feed passed over its echo
        assert len(echoes) == 0
        EventLog(shared_db, clock).publish("task.failed", task_id="t2")  # another seeker's
        heard.wait("new_event")
    finally:
        feed.stop()


def test_an_event_whose_insert_failed_is_news_if_it_was_written(mock_db, clock, monkeypatch):
    """An insert that raised may still have been written, and its watchers
    here were not told: its echo must not be passed over."""
    echoes = Echoes()
    events = EventLog(mock_db, clock, echoes=echoes)
    insert = events.events.insert_one

    def written_then_lost(doc):
        insert(doc)
        raise AutoReconnect("connection lost after the write")

    monkeypatch.setattr(events.events, "insert_one", written_then_lost)
    with pytest.raises(AutoReconnect):
        events.publish("task.succeeded", task_id="t1")
    assert len(echoes) == 0
    written = mock_db["events"].find_one({"task_id": "t1"})
    assert not echoes.mine("events", written["_id"])


def test_an_offer_made_here_wakes_its_poll_once_and_another_seekers_wakes_it(shared_db, clock):
    heard, echoes, woken = Heard(), Echoes(), []
    feed = feed_of(shared_db, heard)
    feed.echoes = echoes
    tasks, helpers = TaskStore(shared_db), HelperStore(shared_db, clock)
    health = HelperHealth(helpers, tasks, clock)
    mailbox = Mailbox(tasks, health, clock, lambda *a: {}, wake=woken.append, echoes=echoes)
    add_helper(helpers, clock, "nat", mode="pull", url=None)
    push = lambda h, p: {"boot_id": "b"}  # noqa: E731
    dispatcher = Dispatcher(tasks, helpers, push, clock, health=health, mailbox=mailbox)
    feed.start()
    try:
        assert feed.streams is True
        stream_open(helpers, heard)
        tasks.create("mine", SPEC, clock())
        assert dispatcher.dispatch_pending() == 1
        assert woken == ["id-nat"]  # its poll woken here, at once
        barrier(helpers, heard, "x")
        assert heard.calls["wake"] == []  # the feed heard the offer, and passed over it
        assert len(echoes) == 0
        other = TaskStore(shared_db)
        other.create("theirs", SPEC, clock())  # offered by another seeker
        other.assign(other.get("theirs"), helpers.get("id-nat"), clock(), via="pull")
        heard.wait("wake", "id-nat")
    finally:
        feed.stop()


def test_an_offer_not_written_is_news_when_heard(mock_db, clock, monkeypatch):
    echoes = Echoes()
    tasks, helpers = TaskStore(mock_db), HelperStore(mock_db, clock)
    health = HelperHealth(helpers, tasks, clock)
    mailbox = Mailbox(tasks, health, clock, lambda *a: {}, echoes=echoes)
    add_helper(helpers, clock, "nat", mode="pull", url=None)
    push = lambda h, p: {"boot_id": "b"}  # noqa: E731
    dispatcher = Dispatcher(tasks, helpers, push, clock, health=health, mailbox=mailbox)
    tasks.create("t1", SPEC, clock())

    def taken(task, *args):
        raise SlotTaken(task)  # another seeker filled the slot meanwhile

    monkeypatch.setattr(tasks, "assign", taken)
    assert dispatcher.dispatch_pending() == 0
    assert len(echoes) == 0

    def lost(*args):
        raise AutoReconnect("connection closed")  # maybe written

    monkeypatch.setattr(tasks, "assign", lost)
    with pytest.raises(AutoReconnect):
        dispatcher.dispatch_pending()
    assert len(echoes) == 0


def test_the_end_of_a_task_whose_one_replica_succeeded_here_looks_up_no_puller(shared_db, clock):
    """Polls wait here, so a task's end heard over the feed looks up the
    pulling helpers that run it, to stop their runs: none runs a task
    whose one replica's success ended it here."""
    heard, echoes, looked = Heard(), Echoes(), []
    feed = feed_of(shared_db, heard)  # polls wait here
    feed.echoes = echoes
    feed._wake_pullers_of = looked.append
    tasks, helpers, seeker, dispatcher = seeker_of(shared_db, clock, echoes)
    feed.start()
    try:
        assert feed.streams is True
        stream_open(helpers, heard)
        mine = seeker.submit(TaskSpec(image="busybox"))["task_id"]
        assert dispatcher.dispatch_pending() == 1
        seeker.assignment_event(mine, finished())
        assert tasks.get(mine)["state"] == "succeeded"
        heard.wait("ended", mine)  # the waits for its end are still answered
        barrier(helpers, heard, "x")
        assert looked == [] and len(echoes) == 0
        other = TaskStore(shared_db)
        other.create("theirs", SPEC, clock())
        other.cancel("theirs", clock())  # cancelled at another seeker
        heard.wait("ended", "theirs")
        assert looked == ["theirs"]
    finally:
        feed.stop()


def test_an_end_not_written_by_the_one_replicas_success_is_news(mock_db, clock, monkeypatch):
    echoes = Echoes()
    tasks, _, seeker, dispatcher = seeker_of(mock_db, clock, echoes)
    task_id = seeker.submit(TaskSpec(image="busybox"))["task_id"]
    dispatcher.dispatch_pending()
    # not the task's one replica after all (say, another was placed meanwhile):
    # settle() decides, and the end it writes may have runs to stop
    monkeypatch.setattr(tasks, "succeed_alone", lambda *args: False)
    seeker.assignment_event(task_id, finished())
    assert tasks.get(task_id)["state"] == "succeeded"
    assert echoes.mine("tasks", task_id)  # the submit's echo, still to come (no feed here)
    assert not echoes.mine("tasks", task_id)  # but not the end's
