"""The helper's Docker client: over a local socket it does not look at the
environment at every call (proxies, ~/.netrc); over TCP it still does. No
engine is contacted: the clients are made with a fixed API version."""

from __future__ import annotations

import docker

from helper.runtime import DockerRuntime


def client(base_url: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=base_url, version="1.41")


def test_a_local_socket_is_not_looked_up_in_the_environment():
    runtime = DockerRuntime(client=client("unix:///var/run/docker.sock"))
    assert runtime.client.api.base_url == "http+docker://localhost"
    assert runtime.client.api.trust_env is False


def test_an_engine_over_tcp_keeps_the_environment_for_its_proxy():
    runtime = DockerRuntime(client=client("tcp://127.0.0.1:2375"))
    assert runtime.client.api.base_url == "http://127.0.0.1:2375"
    assert runtime.client.api.trust_env is True
