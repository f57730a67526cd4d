"""The WSGI server every service runs on: many keep-alive clients (a fleet
of helpers) do not lock new ones out and keep their connections, plain or
over TLS, and stop() ends it cleanly."""

from __future__ import annotations

import http.client
import socket
import time

import pytest
import requests
from flask import Flask, request

from serving import wsgi
from serving.tls import ServerCert
from serving.wsgi import BackgroundServer
from tests.certs import make_certs


def port_app() -> Flask:
    app = Flask(__name__)

    @app.get("/port")
    def port():  # the client's end of the connection: the same while it is kept alive
        return str(request.environ["REMOTE_PORT"])

    return app


@pytest.fixture(params=["http", "https"])
def server_and_ca(request, tmp_path):
    if request.param == "http":
        server, ca = BackgroundServer(port_app(), "127.0.0.1", 0, threads=4), True
    else:
        certs = make_certs(tmp_path)
        cert = ServerCert(certs.cert, certs.key)
        server, ca = BackgroundServer(port_app(), "127.0.0.1", 0, threads=4, cert=cert), certs.ca
    assert server.url.startswith(f"{request.param}://")
    yield server.start(), str(ca) if ca is not True else True
    server.stop()


def test_a_large_fleet_of_keep_alive_clients_keeps_its_connections_and_does_not_lock_out_the_next(
    server_and_ca,
):
    server, ca = server_and_ca
    fleet = [requests.Session() for _ in range(150)]  # more than waitress's default 100
    try:
        first = [s.get(f"{server.url}/port", verify=ca, timeout=5).text for s in fleet]
        assert requests.get(f"{server.url}/port", verify=ca, timeout=5).ok is True
        again = [s.get(f"{server.url}/port", verify=ca, timeout=5).text for s in fleet]
        assert again == first  # every client still on its first connection
    finally:
        for session in fleet:
            session.close()


def test_pipelined_requests_are_each_answered_in_order():
    """Two requests sent at once, before the first answer: the second is
    read with the first (buffered), and answered without waiting for more
    bytes (serving/streams.py's has_data)."""
    server = BackgroundServer(port_app(), "127.0.0.1", 0).start()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        port = str(sock.getsockname()[1]).encode()
        two = b"GET /port HTTP/1.1\r\nHost: x\r\n\r\n" * 2
        sock.sendall(two)
        answers, data = [], b""
        while len(answers) < 2:
            chunk = sock.recv(65536)
            assert chunk, "closed before both answers"
            data += chunk
            while b"\r\n\r\n" in data:
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                if len(rest) < length:
                    break
                answers.append((head.split(b"\r\n")[0], rest[:length]))
                data = rest[length:]
    server.stop()
    assert answers == [(b"HTTP/1.1 200 OK", port)] * 2


def test_a_client_that_connects_and_sends_nothing_does_not_hold_up_the_others(server_and_ca):
    server, ca = server_and_ca
    with socket.create_connection(("127.0.0.1", server.port)):  # silent: no request, no TLS
        assert requests.get(f"{server.url}/port", verify=ca, timeout=5).ok is True


def test_stop_closes_the_server():
    server = BackgroundServer(port_app(), "127.0.0.1", 0).start()
    keep_alive = requests.Session()
    assert keep_alive.get(f"{server.url}/port", timeout=5).ok
    server.stop()
    keep_alive.close()
    try:
        requests.get(f"{server.url}/port", timeout=2)
        reached = True
    except requests.ConnectionError:
        reached = False
    assert reached is False


def test_a_server_never_started_lets_its_port_go():
    server = BackgroundServer(port_app(), "127.0.0.1", 0)
    server.stop()
    again = BackgroundServer(port_app(), "127.0.0.1", server.port).start()
    try:
        assert requests.get(f"{again.url}/port", timeout=5).ok is True
    finally:
        again.stop()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_clients_that_connect_and_say_nothing_hold_no_worker(tmp_path, tls):
    # a port scanner, or a client stuck before its first byte: they wait in
    # the selector, not in the 2 worker threads, so others are still served
    app = Flask(__name__)
    app.get("/ping")(lambda: "pong")
    certs = make_certs(tmp_path) if tls else None
    cert = ServerCert(certs.cert, certs.key) if certs else None
    server = BackgroundServer(app, "127.0.0.1", 0, threads=2, cert=cert).start()
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(10)]
    try:
        verify = str(certs.ca) if certs else True
        answer = requests.get(f"{server.url}/ping", timeout=5, verify=verify)
        assert answer.text == "pong"
    finally:
        for s in silent:
            s.close()
        server.stop()


def test_a_client_given_several_servers_goes_on_to_the_next_when_one_is_down():
    """A comma-separated URL list (several seekers): a request that cannot
    connect to one goes to the next, which stays current."""
    from serving.http import ApiError, JsonClient, Unreachable, split_urls

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    server = BackgroundServer(port_app(), threads=2).start()
    try:
        client = JsonClient(f"{dead}, {server.url}", None, timeout=5)
        assert client.base_urls == split_urls(f"{dead},{server.url}")
        with pytest.raises(ApiError) as answered:  # a POST: the live one answers it
            client.raw("POST", "/port")
        assert answered.value.status == 405
        assert client.base_url == server.url
        assert client.request("GET", "/port") is not None
        alone = JsonClient(dead, None, timeout=5)
        with pytest.raises(Unreachable) as err:
            alone.request("GET", "/port")
        assert err.value.not_sent
    finally:
        server.stop()


def test_an_idle_keep_alive_connection_outlives_the_read_timeout_then_is_closed(monkeypatch):
    """Kept past the read timeout (a helper beating every 100 s reuses its
    connection), closed once idle for KEEP_ALIVE."""
    monkeypatch.setattr(wsgi, "KEEP_ALIVE", 1.5)
    monkeypatch.setattr(wsgi, "KEEP_ALIVE_CHECK", 0.1)
    server = BackgroundServer(port_app(), "127.0.0.1", 0)
    server._server.timeout = 0.3  # the read timeout, which used to close it too
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("GET", "/port")
            first = conn.getresponse().read()
            time.sleep(0.8)  # past the read timeout, within the keep-alive
            conn.request("GET", "/port")
            assert conn.getresponse().read() == first  # the same connection
            started = time.monotonic()
            assert conn.sock.recv(1) == b""  # closed by the server
            assert time.monotonic() - started >= 1.0
        finally:
            conn.close()
    finally:
        server.stop()
