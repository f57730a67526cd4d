"""A helper that accepts connections and never answers (a hung host, a
half-dead path), registered beside a real one and ranked first: the pushes
sent to it wait for their timeout on their own, tasks for the real helper
run meanwhile, the black hole's tasks fail over, and three failed contacts
purge it."""

from __future__ import annotations

import socket
import threading

import pytest

from seeker.client import SeekerClient
from tests.integration.conftest import IMAGE, make_cluster
from tests.integration.harness import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]
GiB = 1024**3


class BlackHole:
    """A listening socket that accepts every connection and says nothing."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, mongo_url, workload_image):
    s = make_cluster(
        tmp_path_factory,
        mongo_url,
        "blackhole",
        "--push-connect-timeout",
        "1",
        "--push-read-timeout",
        "15",
        "--probe-interval",
        "300",  # the failed contacts counted here are the pushes'
    )
    yield s
    s.stop()


def test_a_black_hole_delays_only_its_own_pushes_and_is_purged(cluster, fleet):
    add, client = fleet
    add("real", "cpus=4,memory=4g", "--label", "pool=real", "--slots", "2")
    hole = BlackHole()
    try:
        joined = SeekerClient(cluster.seeker_url, cluster.token).register_helper(
            {
                "helper_id": "black-hole",
                "name": "blackhole",
                "url": f"http://127.0.0.1:{hole.port}",
                "slots": 4,
                "resources": {"cpus": 64, "memory_total": 256 * GiB},
            }
        )
        assert joined["helper_id"] == "black-hole"
        # asking for resources, they rank the black hole (much free room) first
        ask = {"cpus": 1, "memory": "1g"}
        unlucky = [
            client.submit(IMAGE, ["echo", f"u{n}"], resources=ask)["task_id"] for n in range(3)
        ]
        wait_until(
            lambda: all(
                [a["helper_name"] for a in client.get(t)["assignments"]] == ["blackhole"]
                for t in unlucky
            ),
            30,
            "the black hole to be sent the first tasks",
        )
        steady = [
            client.submit(IMAGE, ["echo", f"s{n}"], constraints={"pool": "real"})["task_id"]
            for n in range(3)
        ]
        finished = [client.wait(t, timeout=60) for t in steady]
        assert all(t["state"] == "succeeded" for t in finished)
        # the real helper's tasks ended while the pushes to the black hole still waited
        still = [client.get(t)["assignments"][0]["state"] for t in unlucky]
        assert still == ["pushing"] * 3, still
        done = [client.wait(t, timeout=90) for t in unlucky]
        assert [t["state"] for t in done] == ["succeeded"] * 3
        for t in done:
            first, *rest = t["assignments"]
            assert (first["helper_name"], first["state"]) == ("blackhole", "push_failed")
            assert "timed out" in first["error"].lower()
            assert rest[-1]["helper_name"] == "real"
        assert [h["name"] for h in client.helpers()] == ["real"]
        assert "purging helper blackhole after 3 failed contacts" in cluster.seeker.log()
    finally:
        hole.close()
