"""The real "behind NAT" case: a helper in a network namespace of its own,
joined to the host by a veth pair, with one iptables rule that drops every
inbound connection. It can reach the seeker and the channel; nothing can
reach it. Started with --pull, it runs work through the seeker on the host.

Needs root (ip netns, iptables): skipped on a laptop without it, required
under CI=true. The namespace, the veth pair and the rule are made and
removed by the test; traffic goes only to the addresses of that /30."""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess

import pytest

from seeker.client import SeekerClient
from tests.integration.conftest import IMAGE, db_url
from tests.integration.harness import Service, free_ports, stop_all, wait_until
from tests.requirements import require

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


class Namespace:
    """A network namespace on a /30 of its own: host end .1, namespace end
    .2, and inbound connections to the namespace dropped."""

    def __init__(self):
        tag = secrets.token_hex(3)
        self.name = f"seekt-{tag}"
        self.host_if, self.ns_if = f"skh{tag}", f"skn{tag}"
        subnet = random.randrange(0, 64) * 4
        self.host_ip = f"10.231.{random.randrange(256)}.{subnet + 1}"
        self.ns_ip = self.host_ip.rsplit(".", 1)[0] + f".{subnet + 2}"

    def create(self) -> Namespace:
        sh("ip", "netns", "add", self.name)
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        sh("ip", "link", "set", self.ns_if, "netns", self.name)
        sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        inside = ("ip", "netns", "exec", self.name)
        sh(*inside, "ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        sh(*inside, "ip", "link", "set", self.ns_if, "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
        rule = ("-i", self.ns_if, "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
        sh(*inside, "iptables", "-A", "INPUT", *rule)
        return self

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)


@pytest.fixture
def namespace():
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    require(root, "the behind-NAT test needs root (ip netns, iptables)")
    for tool in ("ip", "iptables"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    ns = Namespace()
    try:
        yield ns.create()
    finally:
        ns.remove()


def test_a_helper_that_accepts_no_connections_runs_work_through_the_seeker(
    namespace, tmp_path, mongo_url, workload_image
):
    token = secrets.token_urlsafe(16)
    prefix = secrets.token_hex(4)
    env = {"SEEKER_TOKEN": token}
    channel_port, seeker_port, helper_port = free_ports(3)
    channel_url = f"http://{namespace.host_ip}:{channel_port}"
    seeker_url = f"http://{namespace.host_ip}:{seeker_port}"
    common = ["--host", namespace.host_ip, "--log-level", "debug"]
    channel = Service(
        "channel",
        ["channel", "start", "--port", str(channel_port), "--data-dir", str(tmp_path / "c")]
        + ["--mongo-url", db_url(mongo_url, prefix + "_channel"), *common],
        tmp_path,
        env,
    )
    seeker = Service(
        "seeker",
        ["seeker", "start", "--port", str(seeker_port), "--data-dir", str(tmp_path / "s")]
        + ["--mongo-url", db_url(mongo_url, prefix + "_seeker"), "--channel-url", channel_url]
        + common,
        tmp_path,
        env,
    )
    helper = Service(
        "helper",
        ["helper", "start", "--pull", "--name", "behind-nat", "--data-dir", str(tmp_path / "h")]
        # it listens on every address of its namespace: only to show none reaches it
        + ["--host", "0.0.0.0", "--port", str(helper_port), "--log-level", "debug"]
        + ["--seeker-url", seeker_url, "--channel-url", channel_url],
        tmp_path,
        env,
        prefix=("ip", "netns", "exec", namespace.name),
    )
    services = [channel, seeker, helper]
    try:
        channel.start().wait_healthy(channel_url)
        seeker.start().wait_healthy(seeker_url)
        helper.start()
        client = SeekerClient(seeker_url, token)
        wait_until(lambda: client.helpers(), 30, "the helper to register")
        (h,) = client.helpers()
        assert (h["name"], h["mode"], h["url"], h["online"]) == ("behind-nat", "pull", None, True)
        # nothing reaches it: a connection to its port is dropped, unanswered
        with pytest.raises(OSError):
            socket.create_connection((namespace.ns_ip, helper_port), timeout=2).close()
        task = client.submit(IMAGE, ["sh", "-c", "echo hello from $SEEKER_HELPER_NAME"])
        done = client.wait(task["task_id"], timeout=90)
        assert done["state"] == "succeeded", done
        (result,) = client.results(task["task_id"])
        assert result["stdout"] == "hello from behind-nat\n"
        assert result["helper_name"] == "behind-nat"
    finally:
        stop_all(reversed(services))
