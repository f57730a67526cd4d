"""Blocking queries of the event log (`GET /api/v1/events?wait=S`) over a
real server that parks requests: answered at once when there is an event,
else at the first one published, or empty when the time is up; a wait holds
no server thread. And `seeker events` (a page, or --follow)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from click.testing import CliRunner
from test_parking import FakeConn, wait_parked

from seeker.api.app import create_app
from seeker.cli.commands import main as seeker_main
from seeker.client import SeekerClient
from seeker.control.operations import Seeker
from seeker.process.waits import parked_kind, published
from seeker.store.events import EVENT_WAITS, TASK_SUCCEEDED, TASK_WAITS, EventLog
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore
from serving.http import ApiError
from serving.parking import Parked, Parking
from serving.wsgi import BackgroundServer


class Served:
    def __init__(self, db, clock, threads: int = 2):
        self.events = EventLog(db, clock)
        self.events.ensure_indexes()
        seeker = Seeker(TaskStore(db), HelperStore(db), clock=clock, events=self.events)
        self.seeker = seeker
        self.parking = Parking(kind=parked_kind)
        # as seeker/process/server.py wires it
        self.events.watch(lambda event: published(self.parking, event))
        app = create_app(seeker=seeker, token="t")
        self.server = BackgroundServer(app, threads=threads, parking=self.parking).start()
        self.client = SeekerClient(self.server.url, "t")

    def publish(self, task_id: str) -> dict:
        return self.events.publish(TASK_SUCCEEDED, task_id=task_id)


@pytest.fixture
def served(mock_db, clock):
    s = Served(mock_db, clock)
    yield s
    s.server.stop()


def test_an_event_already_there_is_answered_at_once(served):
    first = served.publish("t1")
    page = served.client.events(after=0, wait=60)
    assert [e["task_id"] for e in page["events"]] == ["t1"]
    assert page["next"] == first["seq"]
    assert served.parking.parked(EVENT_WAITS) == 0


def test_a_wait_is_answered_by_the_next_event_published(served):
    before = served.publish("t0")["seq"]
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(served.client.events, before, 100, 60)
        wait_parked(served.parking, 1, EVENT_WAITS)
        assert not answer.done()  # it waits: nothing after `before` yet
        event = served.publish("t1")
        page = answer.result(timeout=10)
    assert [e["task_id"] for e in page["events"]] == ["t1"]
    assert page["next"] == event["seq"]


def test_a_wait_whose_time_is_up_is_answered_empty(served):
    after = served.publish("t0")["seq"]
    assert served.client.events(after, wait=1) == {"events": [], "next": None}


def test_without_wait_an_empty_page_is_answered_at_once(served):
    assert served.client.events(0) == {"events": [], "next": None}
    assert served.parking.parked(EVENT_WAITS) == 0


def asked_to_wait(served, path: str, wait: str) -> requests.Response:
    """GET `path` with `wait` as given (not checked by a client first)."""
    return requests.get(
        f"{served.server.url}{path}",
        params={"wait": wait},
        headers={"Authorization": "Bearer t"},
        timeout=10,
    )


@pytest.mark.parametrize("wait", ["-1", "301", "soon"])
def test_a_wait_out_of_range_is_400(served, wait):
    resp = asked_to_wait(served, "/api/v1/events", wait)
    assert resp.status_code == 400
    assert "'wait'" in resp.json()["error"]


def test_a_wait_needs_the_token(served):
    resp = requests.get(f"{served.server.url}/api/v1/events?wait=5", timeout=10)
    assert resp.status_code == 401
    assert served.parking.parked(EVENT_WAITS) == 0


def test_twenty_waits_hold_no_thread_of_a_two_thread_server_and_one_event_answers_all(served):
    with ThreadPoolExecutor(20) as pool:
        answers = [pool.submit(served.client.events, 0, 100, 60) for _ in range(20)]
        wait_parked(served.parking, 20, EVENT_WAITS)
        # the two worker threads are free: a plain request is answered meanwhile
        assert served.client.events(0) == {"events": [], "next": None}
        served.publish("t1")
        pages = [a.result(timeout=10) for a in answers]
    assert all([e["task_id"] for e in p["events"]] == ["t1"] for p in pages)


def test_follow_events_yields_each_event_as_it_is_published(served):
    got: list[str] = []
    three = threading.Event()

    def follow() -> None:
        for event in served.client.follow_events(wait=60):
            got.append(event["task_id"])
            if len(got) == 3:
                three.set()
                return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    served.publish("t1")
    wait_parked(served.parking, 1, EVENT_WAITS)  # it waits for the next one
    served.publish("t2")
    served.publish("t3")
    assert three.wait(10)
    assert got == ["t1", "t2", "t3"]


def test_the_client_waits_longer_than_its_read_timeout_for_a_blocking_query(mock_db, clock):
    s = Served(mock_db, clock)
    try:
        client = SeekerClient(s.server.url, "t", timeout=(2.0, 0.5))
        after = s.publish("t0")["seq"]
        assert client.events(after, wait=1) == {"events": [], "next": None}
        with pytest.raises(ApiError, match="'wait'"):
            client.events(after, wait=301)
    finally:
        s.server.stop()


def test_seeker_events_prints_a_page_and_says_how_to_ask_for_the_next(served):
    served.publish("t1")
    served.events.publish(
        "helper.purged",
        helper_id="h1",
        helper_name="gpu-1",
        failures=3,
        reason="connection refused",
    )
    args = ["events", "--seeker-url", served.server.url, "--token", "t"]
    out = CliRunner().invoke(seeker_main, args)
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert "task.succeeded" in lines[0] and "task t1" in lines[0]
    assert "helper gpu-1 after 3 failed contacts (connection refused)" in lines[1]
    assert lines[2] == "(next page: --after 2)"
    page = json.loads(CliRunner().invoke(seeker_main, [*args, "--after", "1", "--json"]).output)
    assert [e["seq"] for e in page["events"]] == [2] and page["next"] == 2
    assert CliRunner().invoke(seeker_main, [*args, "--after", "2"]).output == "no events\n"


def test_seeker_events_follow_prints_each_event_as_it_comes(served):
    cmd = [sys.executable, "-m", "seeker", "events", "--follow", "--json"]
    cmd += ["--seeker-url", served.server.url, "--token", "t"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        wait_parked(served.parking, 1, EVENT_WAITS)  # it waits for the first event
        served.publish("t1")
        assert json.loads(proc.stdout.readline())["task_id"] == "t1"
        wait_parked(served.parking, 1, EVENT_WAITS)  # and then for the next
        served.publish("t2")
        assert json.loads(proc.stdout.readline())["task_id"] == "t2"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_a_seeker_counts_and_mourns_only_the_helpers_polls_not_the_waits():
    """SeekerServer's hooks into its parking: a wait for the next event or
    for a task's end that its client closes is not a pulling helper gone,
    nor a parked poll."""
    from seeker.process.server import SeekerServer

    dropped: list[str] = []
    server = SeekerServer.__new__(SeekerServer)  # only the hooks are used
    server.seeker = type("S", (), {"poll_dropped": staticmethod(dropped.append)})()
    server.parking = Parking(kind=parked_kind)
    conns = [FakeConn() for _ in range(5)]
    try:
        keys = [EVENT_WAITS, EVENT_WAITS, TASK_WAITS + "t1", "h1", "h2"]
        for conn, key in zip(conns, keys, strict=True):
            conn.seeker_parked = Parked(conn, "req", key, 1e12, b"", 0)
            server.parking.admit(conn)
        assert server.parking.parked() == 5 and server._polls_parked() == 2
        for key in (EVENT_WAITS, TASK_WAITS + "t1", "h1"):
            server._dropped(key)
        assert dropped == ["h1"]
        server.parking.wake("h1")  # answered: no longer parked
        server.parking.wake(TASK_WAITS + "t1")
        assert server._polls_parked() == 1 and server.parking.parked(kind="wait") == 2
    finally:
        server.parking.stop()
        for conn in conns:
            conn.close()
