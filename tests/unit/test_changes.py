"""How a seeker hears of what another seeker on the database did: over a
change stream (SecantusDB presents itself as a one-node replica set), and
by a short poll where the server has none (mongomock, like a standalone
MongoDB)."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from datetime import datetime, timezone

import pytest

from seeker.control.changes import GATHER, ChangeFeed, buffered, wanted_pipeline
from seeker.store.events import EventLog
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore

SPEC = {"image": "busybox:1.36"}
NAT = {"helper_id": "nat", "name": "nat", "mode": "pull"}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Heard:
    """What a feed reports, each kind with an event to wait on."""

    def __init__(self):
        self.calls: dict[str, list] = defaultdict(list)
        self.events: dict[str, threading.Event] = defaultdict(threading.Event)

    def recorder(self, kind: str):
        def record(*args):
            self.calls[kind].append(args)
            self.events[kind].set()

        return record

    def wait(self, kind: str, value=None, seconds: float = 20, count: int = 1) -> None:
        for _ in range(int(seconds / 0.05)):
            if value is None and len(self.calls[kind]) >= count:
                return
            if value is not None and (value,) in self.calls[kind]:
                return
            self.events[kind].wait(0.05)
            self.events[kind].clear()
        raise AssertionError(f"never heard {kind} {value or ''}: {dict(self.calls)}")


def feed_of(db, heard: Heard, parked=lambda: 1, poll_every: float = 1.0) -> ChangeFeed:
    return ChangeFeed(
        db,
        utc_now,
        kick=heard.recorder("kick"),
        joined=heard.recorder("joined"),
        wake=heard.recorder("wake"),
        stop=heard.recorder("stop"),
        forget=heard.recorder("forget"),
        parked=parked,
        poll_every=poll_every,
        new_event=heard.recorder("new_event"),
        ended=heard.recorder("ended"),
        run_ended=heard.recorder("run_ended"),
    )


def barrier(helpers: HelperStore, heard: Heard, name: str, seconds: float = 20) -> None:
    """Another seeker removes a helper, and the feed here hears it (by
    name): it has heard every change made before."""
    helpers.register({"helper_id": name, "name": name, "url": None}, utc_now())
    helpers.remove(name)
    heard.wait("forget", name, seconds=seconds)


def stream_open(helpers: HelperStore, heard: Heard) -> None:
    """The feed's thread opens its stream, and until then hears nothing:
    helpers are removed until it hears one (each a few tenths of a second
    after its change)."""
    for n in range(100):
        helpers.register({"helper_id": f"warm-up-{n}", "name": "w", "url": None}, utc_now())
        helpers.remove(f"warm-up-{n}")
        if heard.events["forget"].wait(0.2):
            return
    raise AssertionError("the feed never opened its stream")


@pytest.fixture
def shared_db(secantus_client):
    name = f"test_{uuid.uuid4().hex}"
    yield secantus_client[name]
    secantus_client.drop_database(name)


def test_over_a_change_stream_another_seekers_work_is_heard_at_once(shared_db):
    heard = Heard()
    feed = feed_of(shared_db, heard).start()
    try:
        assert feed.streams is True
        other, helpers = TaskStore(shared_db), HelperStore(shared_db)
        stream_open(helpers, heard)  # else it may open after the submit, and miss it
        other.create("t1", SPEC, utc_now())  # submitted to another seeker
        heard.wait("joined")  # news at the queue's tail
        assert heard.calls["kick"] == []
        other.assign(other.get("t1"), NAT, utc_now(), via="pull")  # offered by another
        heard.wait("wake", "nat")
        other.cancel("t1", utc_now())  # cancelled there: the puller must hear to stop
        heard.wait("stop", "nat")
        heard.wait("ended", "t1")  # and the requests waiting here for its end
        heard.wait("run_ended", "t1")  # a helper's beat that lists it is checked
        assert ("t1",) in heard.calls["run_ended"] and (None,) in heard.calls["run_ended"]
        helpers.register({**NAT, "url": None}, utc_now(), nonce="n1")
        helpers.remove("nat")  # purged there: its credential must not be trusted here
        heard.wait("forget", "nat")
        assert heard.calls["new_event"] == []
        EventLog(shared_db, utc_now).publish("task.cancelled", task_id="t1")  # published there
        heard.wait("new_event")  # the requests waiting here for it are answered
    finally:
        feed.stop()


def test_the_server_sends_a_replica_given_back_but_not_a_placement_of_the_last(shared_db):
    with shared_db.watch(wanted_pipeline(), max_await_time_ms=200) as stream:
        other = TaskStore(shared_db)
        other.create("t2", SPEC, utc_now())
        other.assign(other.get("t2"), {"helper_id": "p", "name": "p"}, utc_now())  # open 0
        other.push_failed("t2", 1, "refused", utc_now())  # given back: open 1
        seen = []
        for _ in range(100):
            change = stream.try_next()
            if change is not None and change["ns"]["coll"] == "tasks":
                fields = (change.get("updateDescription") or {}).get("updatedFields", {})
                seen.append((change["operationType"], fields.get("open")))
            if ("update", 1) in seen:
                break
    # in order: the placement that left nothing to place would have come first
    assert seen == [("insert", None), ("update", 1)]


def test_without_change_streams_a_short_poll_hears_it(mock_db):
    heard = Heard()
    feed = feed_of(mock_db, heard, poll_every=0.05).start()
    try:
        assert feed.streams is False
        heard.wait("kick")  # every poll places what waits
        heard.wait("new_event")  # and has the waits for the next event look again
        heard.wait("ended")  # and those for a task's end, any task's
        assert set(heard.calls["ended"]) == {(None,)}
        heard.wait("run_ended")  # every busy helper's next beat is checked
        assert set(heard.calls["run_ended"]) == {(None,)}
        other = TaskStore(mock_db)
        other.create("t1", SPEC, utc_now())
        other.assign(other.get("t1"), NAT, utc_now(), via="pull")
        heard.wait("wake", "nat")
    finally:
        feed.stop()


def test_the_poll_looks_for_offers_only_while_polls_wait_here(mock_db):
    heard = Heard()
    feed = feed_of(mock_db, heard, parked=lambda: 0, poll_every=0.05)
    other = TaskStore(mock_db)
    other.create("t1", SPEC, utc_now())
    other.assign(other.get("t1"), NAT, utc_now(), via="pull")
    feed.start()
    try:
        heard.wait("kick", count=3)  # three polls, and none looked for offers
        assert heard.calls["wake"] == []
    finally:
        feed.stop()


def ended(task_id: str) -> dict:
    fields = {"state": "cancelled", "updated_at": utc_now()}
    return {
        "operationType": "update",
        "documentKey": {"_id": task_id},
        "updateDescription": {"updatedFields": fields},
    }


class CountingDb:
    """A database whose collections count the queries made of them."""

    def __init__(self, db):
        self.db, self.finds = db, []

    def __getitem__(self, name):
        db, finds = self.db, self.finds

        class Counted:
            def __getattr__(self, attr):
                return getattr(db[name], attr)

            def find(self, *args, **kwargs):
                finds.append(name)
                return db[name].find(*args, **kwargs)

        return Counted()


def test_a_task_ending_is_looked_up_for_pullers_only_while_polls_wait_here(mock_db):
    tasks = TaskStore(mock_db)
    tasks.create("t1", SPEC, utc_now())
    tasks.assign(tasks.get("t1"), NAT, utc_now(), via="pull")
    waiting = [0]
    counted, heard = CountingDb(mock_db), Heard()
    feed = feed_of(counted, heard, parked=lambda: waiting[0])
    feed.on_task(ended("t1"))  # no poll waits here: nothing to read, nobody to wake
    assert counted.finds == [] and heard.calls["stop"] == []
    waiting[0] = 1
    feed.on_task(ended("t1"))
    assert counted.finds == ["assignments"] and heard.calls["stop"] == [("nat",)]
    assert heard.calls["wake"] == []  # news of a run to stop, not of an offer


def test_every_end_of_an_assignment_is_heard_for_the_beats_mine_or_not(mock_db):
    heard = Heard()
    feed = feed_of(mock_db, heard)
    feed.echoes.expect("assignments", ["t1.1"])  # ended here: made room itself
    for key in ("t1.1", "t2.1"):
        change = {
            "operationType": "update",
            "documentKey": {"_id": key},
            "updateDescription": {"updatedFields": {"state": "lost"}},
        }
        feed.on_assignment(change)
    assert heard.calls["run_ended"] == [("t1.1",), ("t2.1",)]
    assert len(heard.calls["kick"]) == 1  # room (its default) for the other's only


def test_a_placement_that_leaves_nothing_to_place_kicks_nobody(mock_db):
    heard = Heard()
    feed = feed_of(mock_db, heard)
    for still_open in (0, 2):
        change = {
            "operationType": "update",
            "documentKey": {"_id": "t1"},
            "updateDescription": {"updatedFields": {"open": still_open, "rev": 3}},
        }
        feed.on_task(change)
    assert len(heard.calls["kick"]) == 1  # the one with 2 replicas still to place


class ScriptedStream:
    """A change stream that answers each request to the server from a
    script: a batch of changes (empty: a wait that brought nothing), held
    as pymongo's stream holds it (`_cursor._data`)."""

    def __init__(self, batches):
        self.batches = [list(b) for b in batches]
        self.resume_token = {"_data": "t"}
        self._cursor = self
        self._data: list = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def try_next(self):
        if not self._data:
            self._data = self.batches.pop(0)
        return self._data.pop(0) if self._data else None


def watching(stream):
    """A database whose every watch() is `stream`."""
    return type("Db", (), {"watch": lambda self, *a, **k: stream, "name": "db"})()


class PausesSeen:
    """The feed's stop event: records each pause in `log`, stops at the
    first pause after the script ended."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log
        self.ended = False

    def is_set(self):
        return self.ended

    def wait(self, seconds):
        self.log.append(("pause", seconds))
        self.ended = not self.stream.batches and not self.stream._data
        return self.ended


def test_the_stream_asks_the_server_at_most_once_a_pause(mock_db):
    """A pause after an answer that brought nothing, and after the last
    change of one that brought some: never between changes already here."""
    change = {"operationType": "insert", "ns": {"coll": "tasks"}, "documentKey": {"_id": "t"}}
    stream = ScriptedStream([[], [change, change], [], [change]])
    log = []
    feed = ChangeFeed(mock_db, utc_now, kick=lambda: log.append("kick"))
    feed.db = watching(stream)
    feed._stop = PausesSeen(stream, log)
    feed._follow()
    pause = ("pause", GATHER)
    assert log == [pause, "kick", "kick", pause, pause, "kick", pause]


class AnsweredLater:
    """A change stream whose request waits at the server until the test
    answers it, with another seeker's submit."""

    def __init__(self):
        self.asked, self.answer = threading.Event(), threading.Event()
        self.resume_token = {"_data": "t"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def try_next(self):
        self.asked.set()
        self.answer.wait()
        return {"operationType": "insert", "ns": {"coll": "tasks"}, "documentKey": {"_id": "t"}}


def test_stop_leaves_the_streams_waiting_request_and_follows_up_nothing_it_brings(mock_db):
    stream, heard = AnsweredLater(), Heard()
    feed = feed_of(mock_db, heard)
    feed.db = watching(stream)
    feed.start()
    assert stream.asked.wait(10)
    feed.stop()  # returns though the request waits on (up to AWAIT_MS at a server)
    [thread] = feed._threads
    assert thread.is_alive()
    stream.answer.set()  # a change comes after all
    thread.join(10)
    assert not thread.is_alive()
    assert heard.calls["joined"] == heard.calls["kick"] == []  # a stopped seeker places nothing


def test_the_server_sends_only_what_the_feed_reads_of_a_change(shared_db):
    with shared_db.watch(wanted_pipeline(), max_await_time_ms=200) as stream:
        tasks = TaskStore(shared_db)
        tasks.create("t4", {**SPEC, "env": {"BIG": "x" * 10_000}}, utc_now())
        tasks.assign(tasks.get("t4"), NAT, utc_now(), via="pull")  # an offer to a puller
        tasks.cancel("t4", utc_now())
        EventLog(shared_db, utc_now).publish("task.cancelled", task_id="t4", note="y" * 1000)
        changes = []
        for _ in range(200):
            change = stream.try_next()
            if change is not None:
                changes.append(change)
            if len(changes) == 4:
                break
    resume_tokens = [c.pop("_id") for c in changes]
    assert all(resume_tokens)
    inserted, offered, ended, published = changes
    assert inserted == {
        "operationType": "insert",
        "ns": {"coll": "tasks"},
        "documentKey": {"_id": "t4"},
        "fullDocument": {},  # not the spec
    }
    assert offered["ns"] == {"coll": "assignments"}
    assert offered["fullDocument"] == {"via": "pull", "helper_id": "nat"}
    assert ended["ns"] == {"coll": "tasks"}
    assert ended["updateDescription"] == {"updatedFields": {"state": "cancelled"}}
    assert published["ns"] == {"coll": "events"}
    assert published["fullDocument"] == {}  # not the event


def test_the_installed_pymongo_says_what_a_stream_holds(shared_db):
    with shared_db.watch(wanted_pipeline(), max_await_time_ms=50) as stream:
        assert buffered(stream) == 0
        TaskStore(shared_db).create("t3", SPEC, utc_now())
        for _ in range(100):
            if stream.try_next() is not None:
                break
        assert buffered(stream) == 0  # the one change came alone, and was taken
