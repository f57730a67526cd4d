"""The event log (in order, stored, handed to watchers) and the webhook
watcher's delivery: in order, stops at the first failure, resumes from its
stored position."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import requests
from conftest import FakeClock

from seeker.control.webhooks import SIGNATURE_HEADER, WebhookWatcher, verify_webhook
from seeker.store.events import HELPER_PURGED, TASK_FAILED, TASK_SUCCEEDED, EventLog


class FakeSession:
    """Answers posts with the queued outcomes (a status, or an exception)."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.posted: list[dict] = []
        self.sent: list[tuple[bytes, dict]] = []  # every body and its headers

    def post(self, url, data, headers, timeout):
        outcome = self.outcomes.pop(0) if self.outcomes else 200
        if isinstance(outcome, Exception):
            raise outcome
        self.sent.append((data, headers))
        if 200 <= outcome < 300:
            self.posted.append(json.loads(data))
        return type("Response", (), {"status_code": outcome})()


@pytest.fixture
def clock():
    """Now, not the shared fixed past: the log's TTL index expires old events
    (mongomock applies it at read time)."""
    return FakeClock(datetime.now(timezone.utc).replace(microsecond=0))


@pytest.fixture
def log(mongo_db, clock):
    events = EventLog(mongo_db, clock)
    events.ensure_indexes()
    return events


def webhook(log, mongo_db, session) -> WebhookWatcher:
    w = WebhookWatcher(log, "http://receiver/hook", mongo_db)
    w.session = session
    return w


def test_events_are_numbered_in_order_stored_and_watched(log, clock):
    seen = []
    log.watch(seen.append)
    a = log.publish(TASK_SUCCEEDED, task_id="t1")
    b = log.publish(TASK_FAILED, task_id="t2", error="exit 3")
    assert (a["seq"], b["seq"]) == (1, 2)
    assert [e["type"] for e in seen] == [TASK_SUCCEEDED, TASK_FAILED]
    stored = log.since(0)
    assert [(e["seq"], e["type"], e["task_id"]) for e in stored] == [
        (1, TASK_SUCCEEDED, "t1"),
        (2, TASK_FAILED, "t2"),
    ]
    assert log.since(1) == stored[1:]
    assert stored[0]["at"] == clock()


def test_a_failing_watcher_does_not_stop_the_event(log):
    def broken(event):
        raise RuntimeError("watcher bug")

    log.watch(broken)
    log.publish(HELPER_PURGED, helper_name="h1")
    assert [e["type"] for e in log.since(0)] == [HELPER_PURGED]


def test_a_new_webhook_starts_from_now(log, mongo_db):
    log.publish(TASK_SUCCEEDED, task_id="old")
    session = FakeSession()
    w = webhook(log, mongo_db, session)
    log.publish(TASK_SUCCEEDED, task_id="new")
    assert w.deliver_pending() is True
    assert [e["task_id"] for e in session.posted] == ["new"]


def test_delivery_stops_at_a_failure_and_resumes_in_order(log, mongo_db):
    session = FakeSession(200, 503, requests.ConnectionError("down"))
    w = webhook(log, mongo_db, session)
    for n in range(3):
        log.publish(TASK_SUCCEEDED, task_id=f"t{n}")
    assert w.deliver_pending() is False  # t0 delivered, t1 answered 503
    assert w.deliver_pending() is False  # t1 could not be sent
    assert [e["task_id"] for e in session.posted] == ["t0"]
    again = webhook(log, mongo_db, session)  # e.g. after a seeker restart
    assert again.deliver_pending() is True
    assert [e["task_id"] for e in session.posted] == ["t0", "t1", "t2"]
    assert session.posted[0]["at"].endswith("+00:00")  # ISO 8601 in the JSON


def test_more_than_a_page_is_delivered_in_one_go(log, mongo_db):
    session = FakeSession()
    w = webhook(log, mongo_db, session)
    for n in range(250):
        log.publish(TASK_SUCCEEDED, task_id=f"t{n}")
    assert w.deliver_pending() is True
    assert len(session.posted) == 250


def test_posts_are_signed_with_the_secret_and_the_time(log, mongo_db):
    session = FakeSession()
    w = WebhookWatcher(log, "http://receiver/hook", mongo_db, secret="s3", clock=lambda: 1000.0)
    w.session = session
    log.publish(TASK_SUCCEEDED, task_id="t1")
    assert w.deliver_pending()
    body, headers = session.sent[0]
    signature = headers[SIGNATURE_HEADER]
    assert signature.startswith("t=1000,v1=") and headers["Content-Type"] == "application/json"
    assert verify_webhook("s3", signature, body, now=1010)
    assert not verify_webhook("other", signature, body, now=1010)  # another secret
    assert not verify_webhook("s3", signature, body.replace(b"t1", b"t2"), now=1010)  # altered
    assert not verify_webhook("s3", signature, body, now=1000 + 301)  # replayed later
    assert not verify_webhook("s3", "v1=" + signature.split("v1=")[1], body, now=1010)


def test_without_a_secret_posts_are_unsigned(log, mongo_db):
    session = FakeSession()
    w = webhook(log, mongo_db, session)
    log.publish(TASK_SUCCEEDED, task_id="t1")
    assert w.deliver_pending()
    assert SIGNATURE_HEADER not in session.sent[0][1]


# --- several publishers: seekers sharing the database, or threads of one ------


class SlowInsert:
    """An events collection whose first insert lets `meanwhile` run first
    (what a second thread or seeker may do at that moment)."""

    def __init__(self, collection, meanwhile):
        self._collection = collection
        self._meanwhile = meanwhile

    def insert_one(self, doc):
        if self._meanwhile is not None:
            run, self._meanwhile = self._meanwhile, None
            run()
        return self._collection.insert_one(doc)

    def __getattr__(self, name):
        return getattr(self._collection, name)


def test_an_event_is_never_visible_before_one_still_on_its_way(log, mongo_db, clock):
    other = EventLog(mongo_db, clock)  # a second seeker on the same database
    seen_meanwhile = []

    def second_publisher():
        other.publish(TASK_FAILED, task_id="b")
        seen_meanwhile.extend(e["seq"] for e in log.since(0))

    first = EventLog(mongo_db, clock)
    first.events = SlowInsert(first.events, second_publisher)
    a = first.publish(TASK_SUCCEEDED, task_id="a")
    # whatever number the first publisher had in mind when the second got in,
    # no reader saw a number whose predecessor was not written yet
    assert seen_meanwhile == [1]
    assert a["seq"] == 2
    assert [(e["seq"], e["task_id"]) for e in log.since(0)] == [(1, "b"), (2, "a")]


def test_many_threads_publishing_at_once_get_one_number_each_in_order(log, mongo_db, clock):
    logs = [EventLog(mongo_db, clock) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        done = list(
            pool.map(lambda i: logs[i % 4].publish(TASK_SUCCEEDED, task_id=f"t{i}"), range(40))
        )
    assert sorted(e["seq"] for e in done) == list(range(1, 41))
    assert [e["seq"] for e in log.since(0, limit=100)] == list(range(1, 41))


class MeetingInsert:
    """An events collection whose inserts each wait (up to a moment) for
    another insert to begin: what two threads publishing at once do."""

    def __init__(self, collection):
        self._collection = collection
        self.tried: list[int] = []
        self._met = threading.Condition()

    def insert_one(self, doc):
        with self._met:
            self.tried.append(doc["seq"])
            self._met.notify_all()
            self._met.wait_for(lambda: len(self.tried) >= 2, timeout=0.5)  # if it can get in
        return self._collection.insert_one(doc)

    def __getattr__(self, name):
        return getattr(self._collection, name)


def test_threads_of_one_process_take_turns_not_the_same_number(mongo_db, clock):
    one = EventLog(mongo_db, clock)
    one.events = counted = MeetingInsert(one.events)
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda i: one.publish(TASK_SUCCEEDED, task_id=f"t{i}"), range(2)))
    assert sorted(e["seq"] for e in done) == [1, 2]
    assert sorted(counted.tried) == [1, 2]  # no insert refused, no newest read again


def test_pruning_keeps_the_newest_so_the_numbering_goes_on(log, clock):
    for n in range(3):
        log.publish(TASK_SUCCEEDED, task_id=f"t{n}")
    clock.advance(8 * 24 * 3600)
    assert log.prune() == 2
    assert [e["seq"] for e in log.since(0)] == [3]
    assert log.publish(TASK_FAILED, task_id="later")["seq"] == 4
