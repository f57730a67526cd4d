"""Blocking queries of a task (`GET /api/v1/tasks/<id>?wait=S`) on a real
cheroot server with parking: answered at once when the task has ended,
parked (no thread) until it ends here or at another seeker, or answered as
it is when the time is up; and SeekerClient.wait(), which asks so."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from test_event_waits import Served, asked_to_wait
from test_parking import FakeConn, wait_parked

from seeker.client import SeekerClient
from seeker.store.events import EVENT_WAITS, TASK_WAITS
from serving.parking import Parked


@pytest.fixture
def served(mock_db, clock):
    s = Served(mock_db, clock)
    yield s
    s.server.stop()


def submit(served) -> str:
    return served.client.submit("alpine", ["true"])["task_id"]


def test_an_ended_task_is_answered_at_once(served):
    task_id = submit(served)
    served.client.cancel(task_id)
    assert served.client.get(task_id, wait=60)["state"] == "cancelled"
    assert served.parking.parked() == 0


def test_a_wait_is_answered_when_the_task_ends(served):
    task_id, other = submit(served), submit(served)
    with ThreadPoolExecutor(2) as pool:
        answer = pool.submit(served.client.get, task_id, 60)
        waiting = pool.submit(served.client.get, other, 60)
        wait_parked(served.parking, 1, TASK_WAITS + task_id)
        wait_parked(served.parking, 1, TASK_WAITS + other)
        served.client.cancel(task_id)  # its event wakes the waits for it, not the other's
        assert answer.result(timeout=10)["state"] == "cancelled"
        assert not waiting.done() and served.parking.parked(TASK_WAITS + other) == 1
        served.client.cancel(other)
        assert waiting.result(timeout=10)["state"] == "cancelled"


def test_a_wait_whose_time_is_up_is_answered_with_the_task_as_it_is(served):
    task_id = submit(served)
    assert served.client.get(task_id, wait=1)["state"] == "pending"
    assert served.parking.parked() == 0


def test_an_unknown_task_is_404_at_once(served):
    resp = asked_to_wait(served, "/api/v1/tasks/0123456789abcdef", "60")
    assert resp.status_code == 404
    assert served.parking.parked() == 0


@pytest.mark.parametrize("wait", ["-1", "301", "soon"])
def test_a_wait_out_of_range_is_400(served, wait):
    resp = asked_to_wait(served, f"/api/v1/tasks/{submit(served)}", wait)
    assert resp.status_code == 400
    assert "'wait'" in resp.json()["error"]


def test_client_wait_blocks_on_one_query_until_the_task_ends(served, monkeypatch):
    slept: list[float] = []
    served.client.sleep = slept.append
    asked, get = [], served.client.get
    monkeypatch.setattr(served.client, "get", lambda t, wait=0: asked.append(wait) or get(t, wait))
    task_id = submit(served)
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(served.client.wait, task_id, 30)
        wait_parked(served.parking, 1, TASK_WAITS + task_id)
        served.client.cancel(task_id)
        assert done.result(timeout=10)["state"] == "cancelled"
    assert asked == [30] and slept == []  # one blocking query, answered at the end


def test_client_wait_shows_progress_within_a_second(served):
    seen: list[str] = []
    task_id = submit(served)
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(served.client.wait, task_id, 30, 0.25, lambda t: seen.append(t["state"]))
        wait_parked(served.parking, 1, TASK_WAITS + task_id)
        assert seen == ["pending"]
        served.client.cancel(task_id)
        assert done.result(timeout=10)["state"] == "cancelled"
    assert seen == ["pending", "cancelled"]


def test_client_wait_polls_a_seeker_that_answers_at_once(served, monkeypatch):
    """A seeker from before blocking queries ignores `wait`: the client asks
    again every `poll` seconds, not as fast as it can."""
    task_id = submit(served)
    asked: list[int] = []
    answers = iter(["pending", "pending", "succeeded"])

    def get(tid: str, wait: int = 0) -> dict:
        asked.append(wait)
        return {"task_id": tid, "state": next(answers), "assignments": []}

    slept: list[float] = []
    client = SeekerClient(served.server.url, "t")
    client.sleep = slept.append
    monkeypatch.setattr(client, "get", get)
    assert client.wait(task_id, poll=0.5)["state"] == "succeeded"
    assert asked == [60, 60, 60] and slept == [0.5, 0.5]


def test_a_task_ended_at_another_seeker_wakes_the_waits_for_it_only():
    """SeekerServer._ended, as the change feed calls it: a task's end wakes
    the waits for it; without change streams (None) every task wait looks
    again; neither wakes the event waits or the helpers' polls."""
    from seeker.process.server import SeekerServer
    from seeker.process.waits import parked_kind
    from serving.parking import Parking

    server = SeekerServer.__new__(SeekerServer)  # only the hook is used
    server.parking = Parking(kind=parked_kind)
    keys = [TASK_WAITS + "t1", TASK_WAITS + "t2", TASK_WAITS + "t3", EVENT_WAITS, "h1"]
    conns = [FakeConn() for _ in keys]
    try:
        for conn, key in zip(conns, keys, strict=True):
            conn.seeker_parked = Parked(conn, "req", key, 1e12, b"", 0)
            server.parking.admit(conn)
        server._ended("t1")
        assert sorted(server.parking.keys()) == sorted(keys[1:])
        server._ended(None)
        assert sorted(server.parking.keys()) == [EVENT_WAITS, "h1"]
    finally:
        server.parking.stop()
        for conn in conns:
            conn.close()
