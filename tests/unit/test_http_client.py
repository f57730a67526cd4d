"""The JSON client every service's client builds on reads the environment
once, when it is made: the proxy for each server and the CA bundle; never a
~/.netrc, whose password would replace the bearer token."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flask import Flask, redirect, request

from serving.http import ApiError, JsonClient, Unreachable
from serving.tls import ServerCert
from serving.wsgi import BackgroundServer
from tests.certs import make_certs

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def echo_app(name: str) -> Flask:
    app = Flask(__name__)

    @app.route("/echo", methods=["GET", "POST"])
    def echo():
        return {
            "server": name,
            "authorization": request.headers.get("Authorization"),
            "target": request.environ.get("REQUEST_URI"),
        }

    return app


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in (*PROXY_VARS, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


@pytest.fixture
def server():
    s = BackgroundServer(echo_app("server"), "127.0.0.1", 0, threads=2).start()
    yield s
    s.stop()


class _Proxy(BaseHTTPRequestHandler):
    """Answers every request itself, saying what it was asked for (a proxy
    is sent the whole URL)."""

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps(
            {
                "server": "proxy",
                "authorization": self.headers.get("Authorization"),
                "target": self.path,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy():
    s = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    s.url = f"http://127.0.0.1:{s.server_address[1]}"
    yield s
    s.shutdown()
    s.server_close()


def test_a_netrc_entry_for_the_server_does_not_replace_the_bearer_token(
    clean_env, tmp_path, server
):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password other-secret\n")
    netrc.chmod(0o600)
    clean_env.setenv("NETRC", str(netrc))
    client = JsonClient(server.url, "the-token")
    assert client.request("GET", "/echo")["authorization"] == "Bearer the-token"


def test_the_proxy_named_in_the_environment_when_the_client_was_made_is_used(
    clean_env, server, proxy
):
    clean_env.setenv("HTTP_PROXY", proxy.url)
    client = JsonClient("http://seeker.invalid:7070", "t")
    answer = client.request("POST", "/echo", json={})
    assert answer["server"] == "proxy"
    assert answer["target"] == "http://seeker.invalid:7070/echo"  # asked for the seeker
    assert answer["authorization"] == "Bearer t"


def test_no_proxy_sends_to_the_server_itself(clean_env, server, proxy):
    clean_env.setenv("HTTP_PROXY", proxy.url)
    clean_env.setenv("NO_PROXY", "127.0.0.1")
    assert JsonClient(server.url, "t").request("GET", "/echo")["server"] == "server"
    # and only the hosts it names
    elsewhere = JsonClient("http://seeker.invalid:7070", "t")
    assert elsewhere.request("GET", "/echo")["server"] == "proxy"


def test_the_environment_is_read_when_the_client_is_made_not_at_each_request(
    clean_env, server, proxy
):
    direct = JsonClient("http://seeker.invalid:7070", "t")
    clean_env.setenv("HTTP_PROXY", proxy.url)  # too late for `direct`
    with pytest.raises(Unreachable):
        direct.request("GET", "/echo")  # seeker.invalid does not resolve
    elsewhere = JsonClient("http://seeker.invalid:7070", "t")
    assert elsewhere.request("GET", "/echo")["server"] == "proxy"
    clean_env.setenv("NO_PROXY", "seeker.invalid")  # too late for `elsewhere`
    assert elsewhere.request("GET", "/echo")["server"] == "proxy"


def test_the_ca_bundle_comes_from_the_environment_unless_one_is_given(clean_env, tmp_path):
    certs = make_certs(tmp_path / "ours")
    other = make_certs(tmp_path / "other")
    s = BackgroundServer(
        echo_app("tls"), "127.0.0.1", 0, threads=2, cert=ServerCert(certs.cert, certs.key)
    ).start()
    try:
        clean_env.setenv("REQUESTS_CA_BUNDLE", str(certs.ca))
        assert JsonClient(s.url, "t").request("GET", "/echo")["server"] == "tls"
        # an explicit CA wins over the environment's
        with pytest.raises(Unreachable):
            JsonClient(s.url, "t", ca_cert=other.ca).request("GET", "/echo")
        clean_env.setenv("REQUESTS_CA_BUNDLE", str(other.ca))
        assert JsonClient(s.url, "t", ca_cert=certs.ca).request("GET", "/echo")["server"] == "tls"
    finally:
        s.stop()


# --- JSON requests, sent over libcurl ----------------------------------------


def errors_app() -> Flask:
    app = Flask(__name__)

    @app.route("/query", methods=["GET", "POST"])
    def query():
        return {"args": request.args.to_dict(flat=False)}

    @app.route("/refused", methods=["POST"])
    def refused():
        return {"error": "bad task", "detail": "image: field required"}, 422

    @app.route("/broken")
    def broken():
        return "<html>upstream down</html>", 502, {"Content-Type": "text/html"}

    @app.route("/moved", methods=["GET", "POST"])
    def moved():
        return redirect("/query?moved=1", 307)

    @app.route("/empty", methods=["DELETE"])
    def empty():
        return "", 204

    return app


@pytest.fixture
def errors_server():
    s = BackgroundServer(errors_app(), "127.0.0.1", 0, threads=2).start()
    yield s
    s.stop()


class _Hangup(socketserver.BaseRequestHandler):
    """Reads a request, then closes the connection without an answer (a
    server that died with the request on its way)."""

    def handle(self):
        self.server.heard.append(self.request.recv(65536).split(b" ", 1)[0].decode())


@pytest.fixture
def hangup():
    s = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Hangup)
    s.heard = []
    threading.Thread(target=s.serve_forever, daemon=True).start()
    s.url = f"http://127.0.0.1:{s.server_address[1]}"
    yield s
    s.shutdown()
    s.server_close()


def dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_a_json_request_that_could_not_connect_goes_to_the_next_server(clean_env, server):
    dead = dead_url()
    client = JsonClient(f"{dead},{server.url}", "t", timeout=5)
    assert client.request("POST", "/echo", json={"a": 1})["server"] == "server"
    assert client.base_url == server.url  # current from now on
    with pytest.raises(Unreachable) as err:  # alone, it says why
        JsonClient(dead, "t").request("POST", "/echo", json={})
    assert err.value.not_sent is True
    assert str(err.value).startswith(f"cannot reach {dead}/echo: Failed to connect")
    assert str(err.value).endswith("(Connection refused)")


def test_a_post_that_may_have_arrived_is_not_sent_again_but_a_get_is(clean_env, server, hangup):
    client = JsonClient(f"{hangup.url},{server.url}", "t", timeout=5)
    with pytest.raises(Unreachable) as err:
        client.request("POST", "/echo", json={"a": 1})
    assert err.value.not_sent is False
    assert hangup.heard == ["POST"]
    assert client.request("GET", "/echo")["server"] == "server"
    assert hangup.heard == ["POST", "GET"]


def test_an_error_answer_is_an_api_error_with_the_services_message(clean_env, errors_server):
    client = JsonClient(errors_server.url, "t")
    with pytest.raises(ApiError) as refused:
        client.request("POST", "/refused", json={})
    assert (refused.value.status, refused.value.message) == (422, "bad task")
    assert refused.value.detail == "image: field required"
    with pytest.raises(ApiError) as broken:  # not JSON: the status line and the body
        client.request("GET", "/broken")
    assert (broken.value.status, broken.value.message) == (502, "BAD GATEWAY")
    assert broken.value.detail == "<html>upstream down</html>"
    assert client.request("DELETE", "/empty") is None


def test_query_parameters_leave_out_none_and_repeat_lists(clean_env, errors_server):
    client = JsonClient(errors_server.url, "t")
    answer = client.request("GET", "/query", params={"a": 1, "b": None, "c": ["x", "y"]})
    assert answer == {"args": {"a": ["1"], "c": ["x", "y"]}}


def test_a_redirect_is_followed_as_requests_followed_it(clean_env, errors_server):
    client = JsonClient(errors_server.url, "t")
    assert client.request("POST", "/moved", json={}) == {"args": {"moved": ["1"]}}


def test_a_socks_proxy_in_the_environment_is_used_too(clean_env):
    clean_env.setenv("ALL_PROXY", f"socks5://{dead_url().removeprefix('http://')}")
    client = JsonClient("http://seeker.invalid:7070", "t")
    with pytest.raises(Unreachable, match="over proxy 127.0.0.1") as err:
        client.request("GET", "/echo")
    assert err.value.not_sent is True  # the proxy refused: nothing went anywhere


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
