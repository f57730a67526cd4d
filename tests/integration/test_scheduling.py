"""Scheduling and failure handling with several real helper processes and
real Docker: placement by free resources, failover on a refused push,
purge after three failed contacts, lost work re-run elsewhere, GPU waits
and GPU pinning. Helpers declare their resources with the test-only
--test-resources option so placement is deterministic."""

from __future__ import annotations

import json
import re
import signal

import pytest
import requests

from seeker.client import SeekerClient
from tests.integration.conftest import make_cluster
from tests.integration.harness import cli, free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]

PROBE = "0.5"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, mongo_url, workload_image):
    s = make_cluster(
        tmp_path_factory, mongo_url, "cluster", "--probe-interval", PROBE, "--liveness", "30"
    )
    yield s
    s.stop()


def wait_task(client: SeekerClient, task_id: str, timeout: float = 60) -> dict:
    return client.wait(task_id, timeout=timeout, poll=0.1)


def test_a_task_lands_on_the_helper_with_the_most_free_resources(fleet, workload_image):
    add, client = fleet
    add("small", "cpus=2,memory=2g")
    add("big", "cpus=16,memory=64g")
    add("medium", "cpus=4,memory=8g")
    task = client.submit(
        workload_image,
        ["sh", "-c", "echo $SEEKER_HELPER_NAME"],
        resources={"cpus": 1, "memory": "1g"},
    )
    task = wait_task(client, task["task_id"])
    assert task["state"] == "succeeded"
    assert task["result"]["helper_name"] == "big"
    assert client.results(task["task_id"])[0]["stdout"] == "big\n"


def test_a_refused_push_fails_over_to_the_next_best_helper(fleet, cluster, workload_image):
    add, client = fleet
    add("fallback", "cpus=4,memory=8g")
    dead_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    requests.post(
        f"{cluster.seeker_url}/api/v1/helpers",
        timeout=5,
        headers={"Authorization": f"Bearer {cluster.token}"},
        json={
            "helper_id": "refusing",
            "name": "refusing",
            "url": dead_url,
            "slots": 8,
            "resources": {
                "cpus": 64,
                "memory_total": 2**40,
                "memory_available": 2**40,
                "images": [workload_image],  # as "fallback" has: ranked first on room alone
            },
        },
    ).raise_for_status()
    task_id = client.submit(workload_image, ["true"], resources={"cpus": 1})["task_id"]
    task = wait_task(client, task_id)
    assert task["state"] == "succeeded"
    assert task["result"]["helper_name"] == "fallback"
    first, second = task["assignments"][0], task["assignments"][-1]
    assert (first["helper_name"], first["state"]) == ("refusing", "push_failed")
    assert "refused" in first["error"].lower() or "connection" in first["error"].lower()
    assert second["helper_name"] == "fallback"


def test_a_stopped_helper_is_purged_after_exactly_three_failed_contacts(fleet, cluster):
    add, client = fleet
    svc = add("doomed", "cpus=2,memory=2g")
    svc.stop(signal.SIGTERM)
    seen = set()

    def purged() -> bool:
        doomed = [h for h in client.helpers() if h["name"] == "doomed"]
        seen.update(h["failures"] for h in doomed)
        return not doomed

    wait_until(purged, 30, "the stopped helper to be purged", interval=0.05)
    assert max(seen) <= 3, f"failure counts seen before the purge: {seen}"
    lines = [
        ln for ln in cluster.seeker.log(tail=None).splitlines() if "purging helper doomed" in ln
    ]
    assert len(lines) == 1 and "after 3 failed contacts" in lines[0], lines


def test_a_helper_killed_mid_task_has_the_task_finished_elsewhere(fleet, workload_image):
    add, client = fleet
    victim = add("victim", "cpus=32,memory=64g")  # ranks first
    add("survivor", "cpus=2,memory=2g")
    script = (
        'if [ "$SEEKER_HELPER_NAME" = victim ]; then sleep 120; fi; echo ran on $SEEKER_HELPER_NAME'
    )
    task_id = client.submit(workload_image, ["sh", "-c", script], resources={"cpus": 1})["task_id"]
    wait_until(lambda: client.get(task_id)["state"] == "running", 30, "the task to run on victim")
    assert client.get(task_id)["assignments"][-1]["helper_name"] == "victim"
    victim.stop(signal.SIGKILL)
    task = wait_task(client, task_id, timeout=90)
    assert task["state"] == "succeeded"
    assert task["result"]["helper_name"] == "survivor"
    states = [(a["helper_name"], a["state"]) for a in task["assignments"]]
    assert states == [("victim", "lost"), ("survivor", "finished")]
    assert client.results(task_id)[0]["stdout"] == "ran on survivor\n"


def test_a_task_needing_gpus_waits_with_the_reason_then_runs_when_a_helper_fits(
    fleet, workload_image
):
    add, client = fleet
    add("cpu-only", "cpus=8,memory=8g")
    add("one-gpu", "cpus=8,memory=8g,gpus=1,gpu_memory=16g")
    task_id = client.submit(
        workload_image, ["sh", "-c", "echo $SEEKER_GPU_INDICES"], resources={"gpus": 2}
    )["task_id"]
    reason = wait_until(lambda: client.get(task_id)["wait_reason"], 30, "a wait reason")
    assert client.get(task_id)["state"] == "pending"
    assert reason == "2 helpers: 2 not enough free GPUs"
    add("two-gpus", "cpus=8,memory=8g,gpus=2,gpu_memory=16g")
    task = wait_task(client, task_id)
    assert task["state"] == "succeeded" and task["result"]["helper_name"] == "two-gpus"
    assert client.results(task_id)[0]["stdout"] == "0,1\n"


def test_two_tasks_never_share_a_gpu(fleet, workload_image):
    add, client = fleet
    add("gpu-box", "cpus=8,memory=8g,gpus=2,gpu_memory=16g", "--slots", "4")
    ids = [
        client.submit(
            workload_image, ["sh", "-c", "echo $SEEKER_GPU_INDICES; sleep 2"], resources={"gpus": 1}
        )["task_id"]
        for _ in range(3)
    ]
    tasks = [wait_task(client, i) for i in ids]
    assert all(t["state"] == "succeeded" for t in tasks)
    outputs = [client.results(i)[0]["stdout"].strip() for i in ids]
    assert sorted(outputs[:2]) == ["0", "1"], outputs  # the first two ran side by side
    assert re.fullmatch(r"[01]", outputs[2])  # the third waited for a free GPU


def test_a_failed_run_is_retried_on_another_helper(fleet, workload_image):
    add, client = fleet
    add("flaky", "cpus=32,memory=64g")  # ranks first, and fails
    add("steady", "cpus=2,memory=2g")
    script = '[ "$SEEKER_HELPER_NAME" = flaky ] && exit 3; echo attempt $SEEKER_ATTEMPT'
    task_id = client.submit(
        workload_image, ["sh", "-c", script], resources={"cpus": 1}, max_attempts=2
    )["task_id"]
    task = wait_task(client, task_id)
    assert task["state"] == "succeeded"
    runs = [(a["helper_name"], a.get("status")) for a in task["assignments"]]
    assert runs == [("flaky", "failed"), ("steady", "succeeded")]
    assert [r["stdout"] for r in client.results(task_id)] == ["", "attempt 2\n"]


def test_label_constraints_pick_the_helper(fleet, cluster, workload_image):
    add, client = fleet
    add("plain", "cpus=32,memory=64g")
    add("labelled", "cpus=2,memory=2g", "--label", "zone=a")
    out = cli(
        "submit",
        "--json",
        "--wait",
        "--constraint",
        "zone=a",
        "--cpus",
        "1",
        workload_image,
        "--",
        "true",
        token=cluster.token,
        seeker_url=cluster.seeker_url,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["task"]["result"]["helper_name"] == "labelled"


def test_a_seeker_restart_loses_nothing(fleet, cluster, workload_image):
    add, client = fleet
    add("worker", "cpus=4,memory=4g")
    task_id = client.submit(workload_image, ["sh", "-c", "sleep 2; echo survived"])["task_id"]
    wait_until(lambda: client.get(task_id)["state"] == "running", 30, "the task to run")
    cluster.seeker.stop(signal.SIGKILL)
    cluster.seeker.start().wait_healthy(cluster.seeker_url)
    task = wait_task(client, task_id)  # the helper's outbox delivers the end once it is back
    assert task["state"] == "succeeded"
    assert [(a["helper_name"], a["state"]) for a in task["assignments"]] == [("worker", "finished")]
    assert client.results(task_id)[0]["stdout"] == "survived\n"


def test_a_prefetching_helper_queues_the_next_task_and_starts_it_as_a_slot_frees(
    fleet, cluster, workload_image
):
    add, client = fleet
    add("prefetcher", "cpus=4,memory=4g", "--slots", "1", "--prefetch", "1")
    status_url = f"{cluster.helper_urls['prefetcher']}/api/v1/status"

    def on_helper() -> dict[str, bool]:
        status = requests.get(
            status_url, headers={"Authorization": f"Bearer {cluster.token}"}, timeout=5
        ).json()
        return {e["task_id"]: e.get("queued", False) for e in status["running"]}

    first = client.submit(workload_image, ["sleep", "300"])["task_id"]
    wait_until(lambda: client.get(first)["state"] == "running", 60, "the first task to run")
    queued = client.submit(workload_image, ["echo", "never"])["task_id"]
    wait_until(lambda: on_helper().get(queued) is True, 30, "the second to wait on the helper")
    third = client.submit(workload_image, ["echo", "after"])["task_id"]
    wait_until(
        lambda: "no free slot" in (client.get(third).get("wait_reason") or ""),
        30,
        "the third to wait at the seeker (the queue is full)",
    )
    # a queued task cancelled ends without a container, and makes room in the queue
    client.cancel(queued)
    assert wait_task(client, queued)["state"] == "cancelled"
    wait_until(lambda: client.results(queued), 30, "the cancelled one's result")
    (result,) = client.results(queued)
    assert (result["status"], result["started_at"]) == ("cancelled", None)
    wait_until(lambda: on_helper().get(third) is True, 30, "the third to take its place")
    assert on_helper()[first] is False
    client.cancel(first)  # its container exits: the queued one starts
    assert wait_task(client, first)["state"] == "cancelled"
    task = wait_task(client, third)
    assert task["state"] == "succeeded"
    assert client.results(third)[0]["stdout"] == "after\n"
    assert [(a["helper_name"], a["state"]) for a in task["assignments"]] == [
        ("prefetcher", "finished")
    ]
