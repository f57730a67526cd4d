"""TLS: a server with a certificate serves HTTPS; a client that trusts its CA
gets answers, and every way of getting it wrong (no CA, a certificate for
another host, plain HTTP to the TLS port, https:// to a plain port, a bad
certificate or a lone --tls-cert at start) says so in one line."""

from __future__ import annotations

import pytest
import requests
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from flask import Flask

from channel.cli import main as channel_main
from helper.cli import main as helper_main
from seeker.cli.commands import main as seeker_main
from serving.http import ApiError, JsonClient, TlsFailure
from serving.tls import ServerCert, TlsSetupError
from serving.wsgi import BackgroundServer
from tests.certs import make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def ping_app() -> Flask:
    app = Flask(__name__)

    @app.get("/ping")
    def ping():
        return {"pong": True}

    @app.get("/api/v1/tasks/<task_id>")
    def task(task_id):
        return {"task_id": task_id, "state": "pending", "image": "busybox"}

    return app


@pytest.fixture(scope="module")
def tls_server(certs):
    server = BackgroundServer(ping_app(), cert=ServerCert(certs.cert, certs.key)).start()
    yield server
    server.stop()


def test_a_server_with_a_certificate_serves_https_to_a_client_with_the_ca(tls_server, certs):
    assert tls_server.url.startswith("https://127.0.0.1:")
    client = JsonClient(tls_server.url, "t", ca_cert=certs.ca)
    assert client.request("GET", "/ping") == {"pong": True}
    assert client.request("GET", "/ping") == {"pong": True}  # the same connection again


def test_a_client_without_the_ca_is_told_to_pass_it(tls_server, certs):
    with pytest.raises(TlsFailure) as caught:
        JsonClient(tls_server.url, "t").request("GET", "/ping")
    assert str(caught.value) == (
        f"certificate verify failed for {tls_server.url}: pass --ca-cert with the CA "
        "that signed the server's certificate"
    )
    # the failed handshake did not take the server down
    assert JsonClient(tls_server.url, "t", ca_cert=certs.ca).request("GET", "/ping") == {
        "pong": True
    }


def test_a_certificate_for_another_host_is_refused(tmp_path, certs):
    other = make_certs(tmp_path, "elsewhere.example")
    server = BackgroundServer(ping_app(), cert=ServerCert(other.cert, other.key)).start()
    try:
        with pytest.raises(TlsFailure, match="is not valid for its host name"):
            JsonClient(server.url, "t", ca_cert=other.ca).request("GET", "/ping")
    finally:
        server.stop()


def test_plain_http_to_the_tls_port_gets_a_clear_400(tls_server, certs):
    plain = tls_server.url.replace("https://", "http://")
    with pytest.raises(ApiError) as caught:
        JsonClient(plain, "t").request("GET", "/ping")
    assert caught.value.status == 400
    assert caught.value.message == "this server speaks HTTPS only"
    # and the server still serves TLS afterwards
    assert requests.get(f"{tls_server.url}/ping", verify=str(certs.ca), timeout=5).ok is True


def test_https_to_a_plain_port_says_it_does_not_speak_tls(certs):
    server = BackgroundServer(ping_app()).start()
    try:
        assert server.url.startswith("http://")
        https = server.url.replace("http://", "https://")
        with pytest.raises(TlsFailure, match="does not speak TLS: is it an http:// address"):
            JsonClient(https, "t", ca_cert=certs.ca).request("GET", "/ping")
    finally:
        server.stop()


def test_a_missing_mismatched_or_encrypted_certificate_names_the_files(tmp_path, certs):
    with pytest.raises(TlsSetupError, match=r"TLS certificate .*nope\.pem: No such file"):
        ServerCert(tmp_path / "nope.pem", certs.key).adapter()
    with pytest.raises(TlsSetupError, match="cannot be used .*key values mismatch"):
        ServerCert(certs.cert, make_certs(tmp_path / "other").key).adapter()
    key = serialization.load_pem_private_key(certs.key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TlsSetupError, match="encrypted.key is encrypted: give an unencrypted key"):
        ServerCert(certs.cert, encrypted).adapter()  # not a prompt on the terminal


def test_a_lone_tls_cert_is_a_usage_error(certs):
    result = CliRunner().invoke(channel_main, ["start", "--tls-cert", str(certs.cert)])
    assert result.exit_code == 2
    assert "--tls-cert and --tls-key go together: give both or neither" in result.output


def test_a_certificate_that_cannot_be_used_stops_the_server_in_one_line(
    tmp_path, certs, monkeypatch
):
    import mongomock

    class FakeConnection:
        def __init__(self, url, data_dir):
            self.client = mongomock.MongoClient()

        def database(self, name):
            return self.client[name]

    monkeypatch.setattr("channel.cli.DatabaseConnection", FakeConnection)
    # the CA's certificate with the server's key: a pair that does not match
    args = ["start", "--port", "0", "--data-dir", str(tmp_path), "--token", "t"]
    result = CliRunner().invoke(
        channel_main, [*args, "--tls-cert", str(certs.ca), "--tls-key", str(certs.key)]
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Error: cannot start the channel: TLS certificate {certs.ca}")


def test_the_cli_trusts_the_server_with_ca_cert_and_says_what_to_do_without(tls_server, certs):
    args = ["status", "abc", "--seeker-url", tls_server.url, "--token", "t", "--json"]
    without = CliRunner().invoke(seeker_main, args)
    assert without.exit_code == 1
    assert without.output.strip() == (
        f"Error: certificate verify failed for {tls_server.url}: pass --ca-cert with "
        "the CA that signed the server's certificate"
    )
    with_ca = CliRunner().invoke(seeker_main, [*args, "--ca-cert", str(certs.ca)])
    assert with_ca.exit_code == 0, with_ca.output
    assert '"task_id": "abc"' in with_ca.output


def test_the_helper_takes_its_certificate_and_ca_from_the_config_file(tmp_path, certs, monkeypatch):
    captured = {}

    class FakeAgent:
        def __init__(self, cfg):
            captured["cfg"] = cfg

        def start(self):
            raise RuntimeError("not started in this test")

    monkeypatch.setattr("helper.cli.HelperAgent", FakeAgent)
    config = tmp_path / "c.toml"
    config.write_text(
        f"""
[helper]
seeker-url = "https://head:7070"
channel-url = "https://head:7071"
token = "t"
data-dir = "{tmp_path / "data"}"
tls-cert = "{certs.cert}"
tls-key = "{certs.key}"
ca-cert = "{certs.ca}"
"""
    )
    result = CliRunner().invoke(helper_main, ["start", "--config", str(config)])
    assert "cannot start the helper: not started in this test" in result.output
    cfg = captured["cfg"]
    assert cfg.tls == ServerCert(certs.cert, certs.key)
    assert cfg.ca_cert == certs.ca
