"""Pulling helpers (`helper start --pull`), as real processes with real
Docker: a task runs on one, another reads its inputs there, one is
cancelled mid-run, one survives a seeker restart (the helper reconnects by
itself), one moves to another helper when its helper is SIGKILLed, and a
helper cut off for longer than --liveness (SIGSTOP, a partition that closes
no connection) comes back to have its run kept or stopped, never running a
task beyond its replicas."""

from __future__ import annotations

import signal
import time

import pytest

from tests.integration.conftest import IMAGE, make_cluster
from tests.integration.harness import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]

LIVENESS = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, mongo_url, workload_image):
    s = make_cluster(
        tmp_path_factory, mongo_url, "pull", "--liveness", str(LIVENESS), "--probe-interval", "1"
    )
    yield s
    s.stop()


@pytest.fixture
def pullers(fleet):
    """`add(name)`: a pulling helper (one slot, a heartbeat every second)."""
    add, client = fleet

    def add_puller(name: str, *extra: str):
        return add(name, "cpus=4,memory=4g", "--pull", "--heartbeat", "1", *extra)

    return add_puller, client


def assignments(client, task_id) -> list[tuple[str, str]]:
    return [(a["helper_name"], a["state"]) for a in client.get(task_id)["assignments"]]


def running_on(client, task_id, name) -> bool:
    return any(a == (name, "running") for a in assignments(client, task_id))


def containers_of(docker_engine, key) -> list:
    """The containers of a task (or, with `task-attempt`, of one attempt)."""
    return docker_engine.containers.list(all=True, filters={"name": f"seeker-{key}-"})


def test_a_pulling_helper_runs_a_task_and_is_listed_as_pulling(cluster, pullers):
    add, client = pullers
    add("behind-nat")
    (h,) = client.helpers()
    assert (h["mode"], h["url"], h["online"]) == ("pull", None, True)
    task = client.submit(IMAGE, ["sh", "-c", "echo pulled by $SEEKER_HELPER_NAME"])
    done = client.wait(task["task_id"], timeout=60)
    assert done["state"] == "succeeded", done
    (result,) = client.results(task["task_id"])
    assert result["stdout"] == "pulled by behind-nat\n"
    assert "offered to behind-nat" in cluster.seeker.log()


def test_a_pulling_helper_fetches_inputs_with_the_grants_of_its_offers(cluster, pullers, tmp_path):
    """The offer a pulling helper takes carries what a push would: a grant
    for each input (an uploaded file, and the output of a task it ran after),
    without which the channel would not serve them."""
    add, client = pullers
    add("nat-inputs")
    table = tmp_path / "table.csv"
    table.write_text("a,b\n1,2\n")
    uploaded = client.upload_input(table)
    first = client.submit(IMAGE, ["sh", "-c", "mkdir -p /output && echo 0.93 > /output/score.txt"])
    task = client.submit(
        IMAGE,
        ["sh", "-c", "cat /input/table.csv /scores/score.txt"],
        inputs=[uploaded, {"output_of": first["task_id"], "path": "/scores"}],
    )
    done = client.wait(task["task_id"], timeout=60)
    assert done["state"] == "succeeded", (done["error"], client.get(first["task_id"])["error"])
    (result,) = client.results(task["task_id"])
    assert result["stdout"] == "a,b\n1,2\n0.93\n"
    (a,) = done["assignments"]
    assert a["helper_name"] == "nat-inputs" and a["via"] == "pull"
    assert a["fetching_at"] is not None and a["fetching_at"] <= a["started_at"]


def test_a_pulling_helper_is_cancelled_mid_run(cluster, pullers, docker_engine):
    add, client = pullers
    add("nat-a")
    task_id = client.submit(IMAGE, ["sleep", "60"])["task_id"]
    wait_until(lambda: running_on(client, task_id, "nat-a"), 30, "the task to run")
    client.cancel(task_id)
    wait_until(lambda: client.get(task_id)["assignments"][0]["state"] == "finished", 30, "the stop")
    (a,) = client.get(task_id)["assignments"]
    assert a["status"] == "cancelled"
    assert containers_of(docker_engine, task_id) == []


def test_a_pulling_helper_survives_a_seeker_restart(cluster, pullers):
    add, client = pullers
    helper = add("nat-b")
    assert cluster.seeker.stop() == 0
    cluster.seeker.start().wait_healthy(cluster.seeker_url)
    task = client.submit(IMAGE, ["echo", "after the restart"])
    done = client.wait(task["task_id"], timeout=60)
    assert done["state"] == "succeeded"
    assert done["result"]["helper_name"] == "nat-b"
    assert "poll of" in helper.log()  # it noticed, and came back by itself


def test_a_task_of_a_sigkilled_pulling_helper_finishes_on_another(cluster, pullers):
    add, client = pullers
    first = add("nat-c")
    task_id = client.submit(IMAGE, ["sh", "-c", "sleep 6; echo done on $SEEKER_HELPER_NAME"])[
        "task_id"
    ]
    wait_until(lambda: running_on(client, task_id, "nat-c"), 30, "the task to run")
    add("nat-d")
    killed = time.monotonic()
    first.stop(signal.SIGKILL)
    wait_until(lambda: running_on(client, task_id, "nat-d"), 60, "the task on nat-d")
    print(f"running again on another helper {time.monotonic() - killed:.1f} s after the kill")
    done = client.wait(task_id, timeout=60)
    assert done["state"] == "succeeded"
    assert done["result"]["helper_name"] == "nat-d"
    lost = done["assignments"][0]
    assert lost["state"] == "lost" and "poll connection of nat-c dropped" in lost["error"]


def test_a_helper_back_from_a_partition_stops_a_run_that_ran_elsewhere(
    cluster, pullers, docker_engine
):
    add, client = pullers
    away = add("nat-e")
    task_id = client.submit(IMAGE, ["sh", "-c", "sleep 8; echo $SEEKER_HELPER_NAME"])["task_id"]
    wait_until(lambda: running_on(client, task_id, "nat-e"), 30, "the task to run")
    add("nat-f")
    away.proc.send_signal(signal.SIGSTOP)  # silent, its connections open
    try:
        wait_until(lambda: running_on(client, task_id, "nat-f"), 60, "the task on nat-f")
    finally:
        away.proc.send_signal(signal.SIGCONT)
    wait_until(
        lambda: containers_of(docker_engine, f"{task_id}-1") == [], 60, "the stale run stopped"
    )
    done = client.wait(task_id, timeout=60)
    assert done["state"] == "succeeded" and done["result"]["helper_name"] == "nat-f"
    assert [a["state"] for a in done["assignments"]] == ["lost", "finished"]
    assert "no longer its to run: stopping it" in cluster.seeker.log()


def test_a_helper_back_from_a_partition_keeps_a_run_nobody_took_over(cluster, pullers):
    add, client = pullers
    away = add("nat-g")
    task_id = client.submit(IMAGE, ["sh", "-c", "sleep 10; echo kept"])["task_id"]
    wait_until(lambda: running_on(client, task_id, "nat-g"), 30, "the task to run")
    away.proc.send_signal(signal.SIGSTOP)
    try:
        # the assignment is lost, then its task reopened: two documents
        wait_until(lambda: client.get(task_id)["state"] == "pending", 60, "it reopened")
        assert assignments(client, task_id) == [("nat-g", "lost")]
    finally:
        away.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: running_on(client, task_id, "nat-g"), 60, "the run kept")
    done = client.wait(task_id, timeout=60)
    assert done["state"] == "succeeded"
    assert [(a["attempt"], a["state"]) for a in done["assignments"]] == [(1, "finished")]
    (result,) = client.results(task_id)
    assert result["stdout"] == "kept\n"
