"""Blocking queries of an array (`GET /api/v1/arrays/<id>?wait=S`) on a real
cheroot server with parking: answered at once when every task has ended,
else parked (no thread) under the end of the array's last unfinished task
and parked again under the next when that one ends, answered with the
counts when the last ends or the time is up; park_on_watched(), which does
the parking; and SeekerClient.wait_array(), which asks so."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from test_event_waits import Served, asked_to_wait
from test_parking import wait_parked

from seeker.client import SeekerClient
from seeker.store.events import TASK_WAITS
from serving.parking import PARK, RESUMED, park_on_watched


@pytest.fixture
def served(mock_db, clock):
    s = Served(mock_db, clock)
    yield s
    s.server.stop()


def submit(served, n: int = 3) -> tuple[str, list[str]]:
    made = served.client.submit_array("alpine", ["true"], array=n)
    return made["array_id"], [t["task_id"] for t in made["tasks"]]


def test_an_ended_array_is_answered_at_once(served):
    array_id, _ = submit(served)
    served.client.cancel_array(array_id)
    assert served.client.array(array_id, wait=60)["done"]
    assert served.parking.parked() == 0


def test_a_wait_watches_the_last_unfinished_task_until_none_is_left(served):
    array_id, (first, middle, last) = submit(served)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(served.client.array, array_id, 60)
        wait_parked(served.parking, 1, TASK_WAITS + last)
        served.client.cancel(first)  # not the one watched: nothing runs again
        assert served.parking.keys() == [TASK_WAITS + last]
        served.client.cancel(last)  # woken: the next unfinished one is watched
        wait_parked(served.parking, 1, TASK_WAITS + middle)
        assert not answer.done()
        served.client.cancel(middle)
        array = answer.result(timeout=10)
    assert array["done"] and array["counts"] == {"cancelled": 3}
    assert served.parking.parked() == 0


def test_a_wait_whose_time_is_up_is_answered_with_the_counts(served):
    array_id, _ = submit(served, 2)
    array = served.client.array(array_id, wait=1)
    assert not array["done"] and array["counts"] == {"pending": 2}
    assert served.parking.parked() == 0


def test_an_unknown_array_is_404_at_once(served):
    resp = asked_to_wait(served, "/api/v1/arrays/arr-0123456789ab", "60")
    assert resp.status_code == 404
    assert served.parking.parked() == 0


@pytest.mark.parametrize("wait", ["-1", "301", "soon"])
def test_a_wait_out_of_range_is_400(served, wait):
    array_id, _ = submit(served)
    resp = asked_to_wait(served, f"/api/v1/arrays/{array_id}", wait)
    assert resp.status_code == 400
    assert "'wait'" in resp.json()["error"]


class FakeParker:
    def __init__(self, log: list):
        self.log = log

    def generation(self, key: str) -> int:
        self.log.append(("generation", key))
        return 7

    def suspend(self, key: str, seconds: float, body: bytes, generation: int) -> bool:
        self.log.append(("suspend", key, seconds, generation))
        return True


def test_park_on_watched_reads_the_generation_before_checking_and_skips_what_ended():
    log: list = []
    watched = {None: "k1", "k1": "k2"}

    def watch(before: str | None) -> str:
        log.append(("watch", before))
        return watched[before]

    def still(key: str) -> bool:
        log.append(("still", key))
        return key == "k2"  # k1 ended between watch() and the check

    environ = {PARK: FakeParker(log)}
    assert park_on_watched(environ, watch, still, lambda: 30)
    assert log == [
        ("watch", None),
        ("generation", "k1"),
        ("still", "k1"),
        ("watch", "k1"),  # told what it watched, for where to look next
        ("generation", "k2"),
        ("still", "k2"),
        ("suspend", "k2", 30, 7),
    ]


def test_park_on_watched_answers_now_when_nothing_is_left_or_no_time():
    log: list = []
    parker = FakeParker(log)
    assert not park_on_watched({PARK: parker}, lambda b: None, lambda k: True, lambda: 30)
    resumed = {PARK: parker, RESUMED: ("expired", 0, "k")}
    assert not park_on_watched(resumed, lambda b: "k", lambda k: True, lambda: 30)
    assert not park_on_watched({}, lambda b: "k", lambda k: True, lambda: 30)  # cannot park
    assert log == []
    befores: list = []
    woken = {PARK: parker, RESUMED: ("woken", 12.5, "k0")}
    assert park_on_watched(woken, lambda b: befores.append(b) or "k", lambda k: True, lambda: 30)
    assert log[-1] == ("suspend", "k", 12.5, 7)  # what is left, not the whole wait again
    assert befores == ["k0"]  # the key it was woken under


def test_a_woken_wait_looks_for_the_next_task_below_the_one_it_watched(served, monkeypatch):
    """Tasks ending from the last down (the watched one first each time): each
    wake looks at or below the index it watched, not from the top again."""
    array_id, tasks = submit(served, 4)
    bounds: list = []
    store = served.seeker.workflows.store
    last_open = store.array_last_open
    monkeypatch.setattr(
        store,
        "array_last_open",
        lambda a, at_most=None: bounds.append(at_most) or last_open(a, at_most),
    )
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(served.client.array, array_id, 60)
        for i in (3, 2, 1):
            wait_parked(served.parking, 1, TASK_WAITS + tasks[i])
            served.client.cancel(tasks[i])
        wait_parked(served.parking, 1, TASK_WAITS + tasks[0])
        served.client.cancel(tasks[0])
        assert answer.result(timeout=10)["done"]
    assert bounds == [None, 3, 2, 1, 0]


def test_client_wait_array_blocks_on_one_query_until_the_array_ends(served, monkeypatch):
    slept: list[float] = []
    served.client.sleep = slept.append
    asked, array = [], served.client.array
    monkeypatch.setattr(
        served.client, "array", lambda a, wait=0: asked.append(wait) or array(a, wait)
    )
    array_id, tasks = submit(served, 2)
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(served.client.wait_array, array_id, 30)
        wait_parked(served.parking, 1, TASK_WAITS + tasks[-1])
        served.client.cancel_array(array_id)
        assert done.result(timeout=10)["done"]
    assert asked == [30] and slept == []  # one blocking query, answered at the end


def test_client_wait_array_shows_progress(served):
    seen: list[str] = []
    array_id, tasks = submit(served, 2)
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(
            served.client.wait_array, array_id, 30, 0.25, lambda a: seen.append(a["summary"])
        )
        wait_parked(served.parking, 1, TASK_WAITS + tasks[-1])
        assert seen == ["2 pending"]
        served.client.cancel_array(array_id)
        assert done.result(timeout=10)["done"]
    assert seen == ["2 pending", "2 cancelled"]


def test_client_wait_array_polls_a_seeker_that_answers_at_once(served, monkeypatch):
    """A seeker from before blocking queries ignores `wait`: the client asks
    again every `poll` seconds."""
    asked: list[int] = []
    answers = iter([False, False, True])

    def array(array_id: str, wait: int = 0) -> dict:
        asked.append(wait)
        return {"array_id": array_id, "summary": "", "done": next(answers)}

    slept: list[float] = []
    client = SeekerClient(served.server.url, "t")
    client.sleep = slept.append
    monkeypatch.setattr(client, "array", array)
    assert client.wait_array("arr-0123456789ab", poll=0.5)["done"]
    assert asked == [60, 60, 60] and slept == [0.5, 0.5]
