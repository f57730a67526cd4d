"""A client following the event log asks again right after each answer:
that request is parked without reading the log, when no event was
published since the last look; the next event still answers it, and an
event another seeker wrote is read once its news arrives, or once the
last look is a few seconds old."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from test_echoes import Ticks
from test_event_waits import Served
from test_parking import wait_parked

from seeker.api.newest_event import NewestEvent
from seeker.store.events import EVENT_WAITS, TASK_SUCCEEDED


def test_nothing_is_known_after_a_number_until_a_look_found_it():
    ticks = Ticks()
    newest = NewestEvent(clock=ticks, fresh=2.0)
    assert not newest.nothing_after(3, 10)
    newest.found(3, 10)  # under generation 3: nothing after event 10
    assert newest.nothing_after(3, 10) and newest.nothing_after(3, 12)
    assert not newest.nothing_after(3, 9)  # event 10 is after 9
    assert not newest.nothing_after(4, 10)  # an event published since
    assert not newest.nothing_after(None, 10)  # a server that cannot park
    ticks.now += 2.0
    assert not newest.nothing_after(3, 10)  # too old to trust: read again


def test_the_furthest_look_under_a_generation_is_kept():
    newest = NewestEvent(clock=Ticks())
    newest.found(3, 12)
    newest.found(3, 10)  # a look that read before 11 and 12 were there
    assert not newest.nothing_after(3, 10)
    newest.found(4, 10)  # a new generation starts afresh
    assert newest.nothing_after(4, 10)


class Counted:
    """The seeker's event log, counting its reads."""

    def __init__(self, events):
        self.events, self.reads = events, 0

    def __getattr__(self, name):
        return getattr(self.events, name)

    def since(self, seq, limit=100):
        self.reads += 1
        return self.events.since(seq, limit)


@pytest.fixture
def served(mock_db, clock):
    s = Served(mock_db, clock)
    s.seeker.events = s.log = Counted(s.events)
    yield s
    s.server.stop()


def test_a_follower_asking_again_is_parked_without_a_read(served):
    first = served.publish("t1")["seq"]
    page = served.client.events(after=0, wait=60)
    assert page["next"] == first and served.log.reads == 1
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(served.client.events, first, 100, 60)
        wait_parked(served.parking, 1, EVENT_WAITS)
        assert served.log.reads == 1  # parked at once: nothing was published since
        served.publish("t2")
        page = answer.result(timeout=10)
    assert [e["task_id"] for e in page["events"]] == ["t2"]
    assert served.log.reads == 2  # the woken request read the log


def test_a_request_for_what_it_has_not_read_reads(served):
    served.publish("t1")
    second = served.publish("t2")["seq"]
    served.client.events(after=second, wait=1)  # nothing after t2: waited, empty
    page = served.client.events(after=0, wait=60)  # a client that starts over
    assert [e["task_id"] for e in page["events"]] == ["t1", "t2"]
    assert served.client.events(after=0)["next"] == second  # without wait: always read


def test_another_seekers_event_is_read_when_its_news_arrives(served):
    first = served.publish("t1")["seq"]
    served.client.events(after=0, wait=60)
    # written by another seeker: its change reaches this one through the
    # change feed, which wakes the waits (seeker/process/server.py)
    served.events.events.insert_one({"seq": first + 1, "type": TASK_SUCCEEDED, "task_id": "t2"})
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(served.client.events, first, 100, 60)
        wait_parked(served.parking, 1, EVENT_WAITS)  # not read yet: no news of it
        served.parking.wake(EVENT_WAITS)  # the feed heard the insert
        page = answer.result(timeout=10)
    assert [e["task_id"] for e in page["events"]] == ["t2"]
