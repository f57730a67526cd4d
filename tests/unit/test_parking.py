"""Long polls parked without a thread (serving/parking.py on the cheroot
server of serving/wsgi.py): many wait while a 2-thread server answers
others, a wake answers at once with the same body, the deadline answers
empty, a client that goes away is news at once; plain and over TLS."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask import Flask, request

from serving.parking import (
    EXPIRED,
    GENERATION_KEPT,
    PARK,
    PRUNE_FROM,
    RESUMED,
    WOKEN,
    Parked,
    Parking,
    answer_or_park,
)
from serving.tls import ServerCert
from serving.wsgi import BackgroundServer
from tests.certs import make_certs


def poll_app(mailbox: dict, runs: list | None = None) -> Flask:
    """POST /poll/<key>?wait=S answers what the mailbox holds for key, or
    parks until woken or S seconds passed (with `&expired=TEXT`: answered
    {"expired": TEXT} then, without running again); `runs` gets the key of
    every run of the view."""
    app = Flask(__name__)

    @app.post("/poll/<key>")
    def poll(key: str):
        if runs is not None:
            runs.append(key)
        parker = request.environ[PARK]
        resumed = request.environ.get(RESUMED)
        canned = request.args.get("expired")
        if canned is not None and resumed is None:
            answer = json.dumps({"expired": canned}).encode()
            body = request.get_data()
            if parker.suspend(key, float(request.args["wait"]), body, 0, expired=lambda: answer):
                return ""
        generation = parker.generation(key)
        body = request.get_json()
        if key in mailbox:
            return {"got": mailbox.pop(key), "body": body, "resumed": resumed and resumed[0]}
        if resumed is None or resumed[0] == WOKEN:
            seconds = resumed[1] if resumed else float(request.args["wait"])
            if parker.suspend(key, seconds, request.get_data(), generation):
                return ""  # not sent
        return {"got": None, "body": body, "resumed": resumed and resumed[0]}

    @app.get("/ping")
    def ping():
        return "pong"

    return app


@pytest.fixture(params=["http", "https"])
def served(request, tmp_path):
    mailbox: dict = {}
    drops: list[str] = []
    dropped = threading.Event()

    def on_drop(key: str) -> None:
        drops.append(key)
        dropped.set()

    parking = Parking(on_drop=on_drop)
    cert, verify = None, True
    if request.param == "https":
        certs = make_certs(tmp_path)
        cert, verify = ServerCert(certs.cert, certs.key), str(certs.ca)
    server = BackgroundServer(poll_app(mailbox), threads=2, cert=cert, parking=parking).start()
    yield server, parking, mailbox, verify, drops, dropped
    server.stop()


def wait_parked(parking: Parking, n: int, key: str | None = None) -> None:
    # the other side of a real socket: polled, as across processes
    deadline = threading.Event()
    for _ in range(300):
        if parking.parked(key) >= n:
            return
        deadline.wait(0.05)
    raise AssertionError(f"{parking.parked(key)} parked, expected {n}")


def post(url: str, verify, key: str, wait: float, payload: dict, session=None) -> dict:
    s = session or requests
    resp = s.post(f"{url}/poll/{key}?wait={wait}", json=payload, verify=verify, timeout=60)
    resp.raise_for_status()
    return resp.json()


def test_forty_parked_polls_hold_no_thread_of_a_two_thread_server(served):
    server, parking, mailbox, verify, *_ = served
    keys = [f"h{i}" for i in range(40)]
    with ThreadPoolExecutor(len(keys)) as pool:
        polls = {k: pool.submit(post, server.url, verify, k, 50, {"k": k}) for k in keys}
        wait_parked(parking, len(keys))
        # both worker threads are free: without parking this would wait 50 s
        assert requests.get(f"{server.url}/ping", verify=verify, timeout=20).text == "pong"
        for k in keys:
            mailbox[k] = f"work for {k}"
            assert parking.wake(k) == 1
        answers = {k: f.result() for k, f in polls.items()}
    for k in keys:
        assert answers[k] == {"got": f"work for {k}", "body": {"k": k}, "resumed": WOKEN}
    assert parking.parked() == 0


def test_a_parked_poll_whose_time_is_up_is_answered_empty(served):
    server, parking, _, verify, *_ = served
    answer = post(server.url, verify, "idle", 0.3, {"n": 1})
    assert answer == {"got": None, "body": {"n": 1}, "resumed": EXPIRED}


def test_a_parked_poll_whose_time_is_up_gets_its_views_answer_without_a_run():
    runs: list[str] = []
    server = BackgroundServer(poll_app({}, runs), threads=2, parking=Parking()).start()
    try:
        with requests.Session() as s:
            for _ in range(2):  # and its connection serves the next request
                resp = s.post(f"{server.url}/poll/k?wait=0.2&expired=none", json={}, timeout=20)
                assert resp.status_code == 200
                assert resp.headers["Content-Type"] == "application/json"
                assert resp.json() == {"expired": "none"}
    finally:
        server.stop()
    assert runs == ["k", "k"]  # once per poll: not again when its time was up


def test_a_keep_alive_connection_parks_again_after_an_answer(served):
    server, parking, mailbox, verify, *_ = served
    with requests.Session() as s:
        assert post(server.url, verify, "k", 0.2, {}, s)["resumed"] == EXPIRED
        with ThreadPoolExecutor(1) as pool:
            second = pool.submit(post, server.url, verify, "k", 50, {"again": True}, s)
            wait_parked(parking, 1, "k")
            mailbox["k"] = 7
            parking.wake("k")
            assert second.result() == {"got": 7, "body": {"again": True}, "resumed": WOKEN}


def test_a_client_that_goes_away_while_parked_is_news_at_once(served):
    server, parking, _, verify, drops, dropped = served
    body = json.dumps({}).encode()
    head = (
        f"POST /poll/gone?wait=50 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    if server.scheme == "https":
        sock = ssl.create_default_context(cafile=verify).wrap_socket(
            sock, server_hostname="127.0.0.1"
        )
    sock.sendall(head + body)
    wait_parked(parking, 1, "gone")
    sock.close()  # as the kernel does for a process that was killed
    assert dropped.wait(20)
    assert drops == ["gone"]
    assert parking.parked() == 0


class FakeConn:
    """What Parking needs of a cheroot connection: a socket and close()."""

    def __init__(self):
        self.socket, self.peer = socket.socketpair()
        self.seeker_parked = None
        self.seeker_resume = None

    def close(self):
        self.socket.close()
        self.peer.close()


def test_a_wake_between_looking_and_parking_is_not_lost():
    resumed: list = []
    parking = Parking()
    parking.resume = resumed.append
    conn = FakeConn()
    try:
        generation = parking.generation("h")  # the view looks: nothing yet
        parking.wake("h")  # work arrives before the worker thread let go
        conn.seeker_parked = Parked(conn, "req", "h", 1e12, b"{}", generation)
        parking.admit(conn)
        assert resumed == [conn]
        assert conn.seeker_resume[0] == "req" and conn.seeker_resume[2] == WOKEN
        assert parking.parked() == 0
    finally:
        conn.close()
        parking.stop()


def test_stop_closes_the_parked_connections():
    parking = Parking().start()
    conn = FakeConn()
    conn.seeker_parked = Parked(conn, "req", "h", 1e12, b"", parking.generation("h"))
    parking.admit(conn)
    assert parking.parked("h") == 1
    parking.stop()
    assert parking.parked() == 0
    assert conn.socket.fileno() == -1


def test_a_request_parked_after_stop_is_closed_not_resumed():
    """A worker thread may park a request while the server stops: resumed,
    it would run its view again and park again, until the server stopped
    with it queued, answered by nobody."""
    resumed: list = []
    parking = Parking().start()
    parking.resume = resumed.append
    parking.stop()
    conn = FakeConn()
    conn.seeker_parked = Parked(conn, "req", "h", 1e12, b"", parking.generation("h"))
    parking.admit(conn)
    assert resumed == []
    assert parking.parked() == 0
    assert conn.socket.fileno() == -1


class FakeParker:
    """Records suspend() calls; its generation moves on when told."""

    def __init__(self):
        self.gen = 0
        self.suspended: list[tuple] = []

    def generation(self, key: str) -> int:
        return self.gen

    def suspend(self, key, seconds, body, generation, expired=None) -> bool:
        self.suspended.append((key, seconds, body, generation))
        return True


def test_answer_or_park_parks_only_a_request_without_news_with_time_left():
    parker = FakeParker()

    def look_woken_meanwhile(resumed):
        parker.gen += 1  # a wake between reading the generation and looking
        return {"got": None}, False

    environ = {PARK: parker}
    assert answer_or_park(environ, "k", look_woken_meanwhile, lambda: 20, b"{}") == ""
    # parked with the generation read before the look: admit() sees it stale
    assert parker.suspended == [("k", 20, b"{}", 0)]
    assert answer_or_park(environ, "k", lambda r: ({"got": 1}, True), lambda: 20) == {"got": 1}
    assert answer_or_park(environ, "k", lambda r: ({"got": None}, False), lambda: 0) == {
        "got": None
    }
    assert answer_or_park({}, "k", lambda r: ({"got": None}, False), lambda: 20) == {"got": None}
    assert len(parker.suspended) == 1  # news, no time, no parking server: answered


def test_answer_or_park_waits_on_for_what_is_left_when_resumed():
    parker = FakeParker()
    seen = []
    environ = {PARK: parker, RESUMED: (WOKEN, 7.5)}

    def look(resumed):
        seen.append(resumed)
        return {}, False

    def wait() -> float:
        raise AssertionError("a resumed request waits what is left, not anew")

    assert answer_or_park(environ, "k", look, wait) == ""
    assert seen == [(WOKEN, 7.5)] and parker.suspended == [("k", 7.5, b"", 0)]


def test_the_generations_of_keys_nobody_looks_at_are_not_kept():
    """A key of one use (a task's end) is forgotten: a wake of a key no view
    read is not counted, and one read over GENERATION_KEPT ago, with nothing
    parked under it, is dropped once the keys double; one read lately, or
    with a request parked under it, keeps its count."""
    now = [0.0]
    parking = Parking(now=lambda: now[0])
    conn = FakeConn()
    try:
        for n in range(5000):
            parking.wake(f"/tasks/{n}")  # ended, and nobody waited
        assert parking._generations == {} and parking._read_at == {}
        parked = parking.generation("h")
        conn.seeker_parked = Parked(conn, "req", "h", 1e12, b"{}", parked)
        parking.admit(conn)  # parked under "h"
        for n in range(PRUNE_FROM - 2):
            parking.generation(f"/tasks/{n}")
        parking.wake("/tasks/0")
        now[0] = GENERATION_KEPT + 1
        recent = parking.generation("/tasks/recent")  # the PRUNE_FROM-th key: pruned
        assert set(parking._read_at) == {"h", "/tasks/recent"}
        assert "/tasks/0" not in parking._generations
        parking.wake("/tasks/recent")
        assert parking.generation("/tasks/recent") == recent + 1  # a wake after a read counts
        assert parking.parked("h") == 1
    finally:
        conn.close()
        parking.stop()
