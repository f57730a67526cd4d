"""TLS end to end: the channel, the seeker and a helper as separate processes
serving HTTPS with a certificate of a test CA (given through SEEKER_TLS_CERT,
SEEKER_TLS_KEY and SEEKER_CA_CERT), a real container run through them, and
`seeker up` serving all three over HTTPS with --tls-cert and --tls-key."""

from __future__ import annotations

import json
import secrets
import signal

import pytest

from channel.client import ChannelClient
from seeker.client import SeekerClient
from tests.certs import make_certs
from tests.integration.conftest import Stack
from tests.integration.harness import Service, cli, free_ports, wait_until
from tests.requirements import require

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory, mongo_url, workload_image, certs):
    s = Stack(
        tmp_path_factory.mktemp("tls-stack"),
        mongo_url,
        secrets.token_urlsafe(16),
        secrets.token_hex(4),
        tls=certs,
    )
    s.start()
    yield s
    s.stop()


def test_a_task_runs_through_seeker_helper_and_channel_over_tls(tls_stack, certs, workload_image):
    assert tls_stack.seeker_url.startswith("https://")
    client = SeekerClient(tls_stack.seeker_url, tls_stack.token, ca_cert=certs.ca)
    [helper] = wait_until(client.helpers, 30, "the helper to register over TLS")
    assert helper["url"] == tls_stack.helper_url  # it advertises https://
    assert helper["url"].startswith("https://")

    out = cli(
        "submit",
        "--ca-cert",
        str(certs.ca),
        "--json",
        "--wait",
        workload_image,
        "--",
        "echo",
        "over tls",
        token=tls_stack.token,
        seeker_url=tls_stack.seeker_url,
    )
    assert out.returncode == 0, out.stderr + tls_stack.logs()
    done = json.loads(out.stdout)
    assert done["task"]["state"] == "succeeded"
    task_id = done["task"]["task_id"]
    # the helper posted the result to the channel over TLS, and the seeker read it there
    [result] = done["results"]
    assert result["stdout"] == "over tls\n"
    channel = ChannelClient(tls_stack.channel_url, tls_stack.token, ca_cert=certs.ca)
    [stored] = channel.all_results(task_id)
    assert stored["stdout"] == "over tls\n"
    assert stored["helper_id"] == helper["helper_id"]


def test_a_pulling_helper_takes_its_work_over_tls(tls_stack, certs, workload_image):
    """Pull mode over HTTPS: the helper's long poll and its acknowledgement
    go over TLS with its own credential, and its result reaches the channel."""
    tls_stack.add_helper("tls-puller", "--pull", "--label", "mode=pull")
    client = SeekerClient(tls_stack.seeker_url, tls_stack.token, ca_cert=certs.ca)
    wait_until(
        lambda: any(h["name"] == "tls-puller" for h in client.helpers()), 30, "it to register"
    )
    task = client.submit(workload_image, ["echo", "pulled over tls"], constraints={"mode": "pull"})
    done = client.wait(task["task_id"], timeout=60)
    assert done["state"] == "succeeded", tls_stack.logs()
    assert done["result"]["helper_name"] == "tls-puller"
    [result] = client.results(task["task_id"])
    assert result["stdout"] == "pulled over tls\n"


def test_the_cli_without_the_ca_says_to_pass_it(tls_stack):
    out = cli("status", "nosuchtask", token=tls_stack.token, seeker_url=tls_stack.seeker_url)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"Error: certificate verify failed for {tls_stack.seeker_url}: pass --ca-cert "
        "with the CA that signed the server's certificate"
    )


def test_seeker_up_serves_all_three_over_tls(tmp_path, certs, workload_image):
    try:
        import secantus  # noqa: F401
    except ImportError:
        require(False, "SecantusDB is not installed")
    token = "up-tls-token"
    ports = [str(p) for p in free_ports(3)]
    tls = ["--tls-cert", str(certs.cert), "--tls-key", str(certs.key), "--ca-cert", str(certs.ca)]
    svc = Service(
        "up-tls",
        ["seeker", "up", "--data-dir", str(tmp_path / "data"), "--port", ports[0]]
        + ["--channel-port", ports[1], "--helper-port", ports[2], *tls],
        tmp_path,
        {"SEEKER_TOKEN": token},
    )
    url = f"https://127.0.0.1:{ports[0]}"
    svc.start().wait_healthy(url, verify=str(certs.ca))
    try:
        client = SeekerClient(url, token, ca_cert=certs.ca)
        [helper] = wait_until(client.helpers, 30, "the local helper to register")
        assert helper["url"] == f"https://127.0.0.1:{ports[2]}"
        task = client.wait(client.submit(workload_image, ["echo", "up"])["task_id"], timeout=60)
        assert task["state"] == "succeeded", svc.log()
        assert [r["stdout"] for r in client.results(task["task_id"])] == ["up\n"]
    finally:
        assert svc.stop(signal.SIGTERM) == 0, svc.log()
