"""Task arrays with real processes and real Docker: one request makes the
array, each container sees its own SEEKER_ARRAY_INDEX (every index exactly
once), `seeker status ARRAY_ID` counts the states, `seeker cancel ARRAY_ID`
cancels what has not ended, GET /api/v1/tasks?array_id= lists its tasks."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from seeker.client import SeekerClient
from tests.integration.conftest import make_cluster
from tests.integration.harness import cli, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, mongo_url, workload_image):
    s = make_cluster(tmp_path_factory, mongo_url, "arrays")
    try:
        s.add_helper("wide", "--slots", "6")
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def client(cluster) -> SeekerClient:
    c = SeekerClient(cluster.seeker_url, cluster.token)
    wait_until(lambda: c.helpers(), 30, "the helper to register")
    return c


def seeker(cluster, *args: str, timeout: float = 300):
    return cli(*args, token=cluster.token, seeker_url=cluster.seeker_url, timeout=timeout)


def test_an_array_of_50_sees_every_index_exactly_once(cluster, client, workload_image):
    out = seeker(
        cluster,
        "submit",
        "--array",
        "50",
        "--json",
        workload_image,
        "--",
        "sh",
        "-c",
        "echo index=$SEEKER_ARRAY_INDEX of $SEEKER_ARRAY_ID",
    )
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    array_id = made["array_id"]
    assert made["size"] == 50 and len(made["tasks"]) == 50
    done = client.wait_array(array_id, timeout=600)
    assert done["counts"] == {"succeeded": 50}, cluster.logs()
    tasks = client.array_tasks(array_id)
    assert [t["array_index"] for t in tasks] == list(range(50))
    seen = Counter()
    for t in tasks:
        [result] = client.results(t["task_id"])
        assert result["stdout"] == f"index={t['array_index']} of {array_id}\n"
        seen[t["array_index"]] += 1
    assert seen == Counter(range(50))
    status = seeker(cluster, "status", array_id)
    assert status.stdout.strip() == f"array {array_id}: 50 tasks: 50 succeeded"


def test_status_counts_and_cancel_stops_what_has_not_ended(cluster, client, workload_image):
    out = seeker(cluster, "submit", "--array", "0-9", workload_image, "--", "sleep", "60")
    array_id = out.stdout.strip()
    assert array_id.startswith("arr-"), out.stderr
    wait_until(
        lambda: client.array(array_id)["counts"].get("running", 0) == 6,
        120,
        "six of the array to run (one helper, six slots)",
    )
    status = seeker(cluster, "status", array_id).stdout.strip()
    assert status == f"array {array_id}: 10 tasks: 6 running, 4 pending"
    cancelled = seeker(cluster, "cancel", "--json", array_id)
    body = json.loads(cancelled.stdout)
    assert body["cancelled"] == 10 and body["counts"] == {"cancelled": 10}
    # the six containers are stopped: their runs end as cancelled
    wait_until(
        lambda: sum(len(client.results(t["task_id"])) for t in client.array_tasks(array_id)) == 6,
        120,
        "the six stopped runs to be reported",
    )
    statuses = {
        r["status"] for t in client.array_tasks(array_id) for r in client.results(t["task_id"])
    }
    assert statuses == {"cancelled"}


def test_an_array_after_a_task(cluster, client, workload_image):
    first = seeker(cluster, "submit", workload_image, "--", "sh", "-c", "sleep 1").stdout.strip()
    out = seeker(
        cluster, "submit", "--array", "3", "--after", first, "--json", workload_image, "--", "true"
    )
    made = json.loads(out.stdout)
    assert {t["state"] for t in made["tasks"]} == {"pending"}
    assert client.wait_array(made["array_id"], timeout=120)["counts"] == {"succeeded": 3}
    ended = client.get(first)
    for t in client.array_tasks(made["array_id"]):
        assert t["waiting_for"] == [] and t["after"] == [first]
        dispatched = next(h["at"] for h in t["history"] if h["state"] == "dispatched")
        assert dispatched >= next(h["at"] for h in ended["history"] if h["state"] == "succeeded")


def test_an_array_of_1000_is_one_request_and_cancelled_down_the_chain(
    cluster, client, workload_image
):
    first = client.submit(workload_image, ["sleep", "60"])
    made = client.submit_array(workload_image, ["true"], array=1000, after=[first["task_id"]])
    assert made["size"] == 1000
    assert [t["array_index"] for t in made["tasks"]] == list(range(1000))
    assert client.array(made["array_id"])["summary"] == "1000 pending"
    client.cancel(first["task_id"])
    done = client.wait_array(made["array_id"], timeout=120)
    assert done["counts"] == {"cancelled": 1000}
    [one] = client.tasks_page(limit=1, array_id=made["array_id"])["tasks"]
    assert one["error"] == f"dependency {first['task_id']} cancelled"
    wait_until(lambda: client.results(first["task_id"]), 60, "the stopped run's result")
