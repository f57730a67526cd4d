"""The JSON client's connections: each method sent as named with its body,
a large body at once, an answer that does not come, close() ending a request
under way, connections shared by threads, a request lost on a kept-alive
connection."""

from __future__ import annotations

import socket
import threading

import pytest
from flask import Flask, request

from serving.http import JsonClient, Unreachable
from serving.wsgi import BackgroundServer


def methods_app() -> Flask:
    app = Flask(__name__)

    @app.route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def echo():
        return {
            "method": request.method,
            "length": request.headers.get("Content-Length"),
            "type": request.headers.get("Content-Type"),
            "expect": request.headers.get("Expect"),
            "size": len(request.get_data()),
        }

    @app.route("/slow")
    def slow():
        threading.Event().wait(2)
        return {}

    return app


@pytest.fixture
def methods_server():
    s = BackgroundServer(methods_app(), "127.0.0.1", 0, threads=4).start()
    yield s
    s.stop()


def test_each_method_is_sent_as_it_is_named_with_its_body(clean_env, methods_server):
    client = JsonClient(methods_server.url, "t")
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        answer = client.request(method, "/echo", json={"a": 1})
        assert answer == {
            "method": method,
            "length": "8",
            "type": "application/json",
            "expect": None,
            "size": 8,
        }
    # without a body: a POST says it has none, a GET and a DELETE send none
    posted = client.request("POST", "/echo")
    assert (posted["method"], posted["length"], posted["type"]) == ("POST", "0", None)
    assert client.request("GET", "/echo")["method"] == "GET"
    assert client.request("DELETE", "/echo")["method"] == "DELETE"
    # a GET after a POST on the same connection is a GET again
    assert client.request("GET", "/echo")["size"] == 0


def test_a_large_body_is_sent_at_once_not_after_asking_to(clean_env, methods_server):
    client = JsonClient(methods_server.url, "t")
    answer = client.request("POST", "/echo", json={"blob": "x" * 2_000_000})
    assert (answer["expect"], answer["size"]) == (None, 2_000_012)


def test_an_answer_that_does_not_come_in_time_is_unreachable_but_may_have_arrived(
    clean_env, methods_server
):
    client = JsonClient(methods_server.url, "t", timeout=(1.0, 0.2))
    with pytest.raises(Unreachable, match="timed out") as err:
        client.request("GET", "/slow")
    assert err.value.not_sent is False
    assert client.request("GET", "/echo")["method"] == "GET"  # the client still works


def test_closing_the_client_ends_a_request_waiting_for_its_answer(clean_env):
    """A pulling helper's stop() closes its client to end the long poll
    waiting at the seeker, which otherwise ran on to its timeout."""
    with socket.socket() as silent:  # accepts (the backlog does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = JsonClient(f"http://127.0.0.1:{silent.getsockname()[1]}", "t", timeout=300)
        failed: list = []

        def ask():
            try:
                client.request("POST", "/poll", json={})
            except Unreachable as exc:
                failed.append(exc)

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        asking.join(0.5)
        assert asking.is_alive()  # waiting for the answer
        client.close()
        asking.join(30)  # not the 600 s its timeout allows
        assert not asking.is_alive()
        assert len(failed) == 1 and failed[0].not_sent is False
        with pytest.raises(Unreachable, match="timed out"):  # the client still works
            client.request("POST", "/poll", json={}, timeout=0.3)


def test_threads_share_the_clients_connections_and_it_keeps_at_most_its_pool(
    clean_env, methods_server
):
    client = JsonClient(methods_server.url, "t", pool_size=2)
    answers: list[str] = []

    def send():
        for _ in range(20):
            answers.append(client.request("POST", "/echo", json={})["method"])

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == ["POST"] * 120
    transport = client._pools[methods_server.url]
    assert 1 <= len(transport._idle) <= 2
    client.close()
    assert transport._idle == []


@pytest.fixture
def dies_after_one():
    """Answers one request on a kept-alive connection, then reads the next,
    stops listening and closes it unanswered (a server killed with a request
    on its way)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    heard: list[str] = []

    def serve():
        conn, _ = listener.accept()
        heard.append(conn.recv(65536).split(b" ", 1)[0].decode())
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        heard.append(conn.recv(65536).split(b" ", 1)[0].decode())
        listener.close()
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", heard
    listener.close()
    thread.join(5)


def test_a_post_lost_on_a_kept_alive_connection_is_not_sent_to_the_next_server(
    clean_env, server, dies_after_one
):
    url, heard = dies_after_one
    client = JsonClient(f"{url},{server.url}", "t", timeout=5)
    assert client.request("POST", "/echo", json={}) == {}
    # libcurl sends it again on a new connection, which is refused: the
    # error is a refused connection, but the request had reached the server
    with pytest.raises(Unreachable) as err:
        client.request("POST", "/echo", json={})
    assert err.value.not_sent is False
    assert heard == ["POST", "POST"]
