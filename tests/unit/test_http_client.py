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
from tests.http_servers import echo_app


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
