"""`seeker up`: the single-machine stack in one process with the embedded
database, its clean shutdown, and its data kept across a restart."""

from __future__ import annotations

import json
import signal

import pytest

from seeker.client import SeekerClient
from tests.integration.harness import Service, cli, free_ports, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def start_up(base, token):
    try:
        import secantus  # noqa: F401
    except ImportError:
        from tests.requirements import require

        require(False, "SecantusDB is not installed")
    port, *others = free_ports(3)
    ports = [str(port), *map(str, others)]
    svc = Service(
        "up",
        [
            "seeker",
            "up",
            "--data-dir",
            str(base / "data"),
            "--port",
            ports[0],
            "--channel-port",
            ports[1],
            "--helper-port",
            ports[2],
        ],
        base,
        {"SEEKER_TOKEN": token},
    )
    url = f"http://127.0.0.1:{port}"
    svc.start().wait_healthy(url)
    return svc, url


def test_up_runs_a_task_and_keeps_it_across_a_restart(tmp_path, workload_image):
    token = "up-test-token"
    svc, url = start_up(tmp_path, token)
    try:
        client = SeekerClient(url, token)
        wait_until(client.helpers, 30, "the local helper to register")
        out = cli(
            "submit",
            "--json",
            "--wait",
            workload_image,
            "--",
            "echo",
            "persisted",
            token=token,
            seeker_url=url,
        )
        assert out.returncode == 0, out.stderr + svc.log()
        task_id = json.loads(out.stdout)["task"]["task_id"]
    finally:
        assert svc.stop(signal.SIGTERM) == 0, svc.log()

    svc, url = start_up(tmp_path, token)
    try:
        client = SeekerClient(url, token)
        task = client.get(task_id)
        assert task["state"] == "succeeded"
        [result] = client.results(task_id)
        assert result["stdout"] == "persisted\n"
        [helper] = wait_until(client.helpers, 30, "the helper to re-register")
        assert helper["helper_id"] == task["result"]["helper_id"]  # same identity
    finally:
        assert svc.stop(signal.SIGTERM) == 0, svc.log()
