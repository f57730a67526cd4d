"""Redundant submission with real helpers and real Docker: quorum with an
odd replica, first-success with the rest cancelled, a replica lost with its
helper and re-run on one that has not run the task, waiting for helpers."""

from __future__ import annotations

import signal

import pytest

from tests.integration.conftest import make_cluster
from tests.integration.harness import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]

IMAGE = "seeker-demo:latest"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, mongo_url, workload_image):
    s = make_cluster(tmp_path_factory, mongo_url, "replicas", "--probe-interval", "0.5")
    yield s
    s.stop()


def add_all(add, *names: str) -> None:
    for name in names:
        add(name, "cpus=4,memory=4g", "--slots", "2")


def test_quorum_two_of_three_outvotes_the_odd_replica(fleet):
    add, client = fleet
    add_all(add, "h-a", "h-b", "h-odd")
    script = 'if [ "$SEEKER_HELPER_NAME" = h-odd ]; then echo odd; else sleep 1; echo agreed; fi'
    task = client.submit(
        IMAGE, ["sh", "-c", script], replicas=3, policy={"kind": "quorum", "quorum": 2}
    )
    task = client.wait(task["task_id"], timeout=60, poll=0.1)
    assert task["state"] == "succeeded"
    results = {r["helper_name"]: r for r in client.results(task["task_id"])}
    assert results["h-odd"]["stdout"] == "odd\n"
    canonical = [r for r in results.values() if r["canonical"]]
    assert len(canonical) == 1 and canonical[0]["stdout"] == "agreed\n"
    assert canonical[0]["helper_name"] in ("h-a", "h-b")
    votes = {v["output_digest"]: sorted(v["helpers"]) for v in task["votes"]}
    assert votes[results["h-odd"]["output_digest"]] == ["h-odd"]
    assert votes[canonical[0]["output_digest"]] == ["h-a", "h-b"]
    assert task["result"]["output_digest"] == canonical[0]["output_digest"]


def test_quorum_sends_one_more_replica_when_results_disagree(fleet):
    add, client = fleet
    add_all(add, "q-1", "q-2", "q-3")
    # the first two replicas disagree; the third (sent only then) agrees with the first
    script = 'case "$SEEKER_ATTEMPT" in 2) echo two;; *) echo one;; esac'
    task = client.submit(
        IMAGE,
        ["sh", "-c", script],
        replicas=2,
        policy={"kind": "quorum", "quorum": 2, "max_replicas": 3},
    )
    task = client.wait(task["task_id"], timeout=60, poll=0.1)
    assert task["state"] == "succeeded"
    assert task["wanted"] == 3
    assert sorted(a["helper_name"] for a in task["assignments"]) == ["q-1", "q-2", "q-3"]
    [canonical] = [r for r in client.results(task["task_id"]) if r["canonical"]]
    assert canonical["stdout"] == "one\n" and canonical["attempt"] in (1, 3)
    assert len(task["votes"]) == 2


def test_a_quorum_that_cannot_be_reached_fails_with_the_reason(fleet):
    add, client = fleet
    add_all(add, "d-1", "d-2")
    task = client.submit(
        IMAGE,
        ["sh", "-c", "echo $SEEKER_HELPER_NAME"],
        replicas=2,
        policy={"kind": "quorum", "quorum": 2, "max_replicas": 2},
    )
    task = client.wait(task["task_id"], timeout=60, poll=0.1)
    assert task["state"] == "failed"
    assert task["error"].startswith("no quorum: 2 agreeing results needed, best was 1 of 2")


def test_first_success_wins_and_the_other_replicas_are_cancelled(fleet):
    add, client = fleet
    add_all(add, "fast", "slow-1", "slow-2")
    script = '[ "$SEEKER_HELPER_NAME" = fast ] || sleep 60; echo $SEEKER_HELPER_NAME'
    task = client.submit(IMAGE, ["sh", "-c", script], replicas=3)
    task = client.wait(task["task_id"], timeout=60, poll=0.1)
    assert task["state"] == "succeeded" and task["result"]["helper_name"] == "fast"
    results = wait_until(
        lambda: (r := client.results(task["task_id"])) and len(r) == 3 and r,
        60,
        "the cancelled replicas' results",
    )
    by_helper = {r["helper_name"]: r["status"] for r in results}
    assert by_helper == {"fast": "succeeded", "slow-1": "cancelled", "slow-2": "cancelled"}


def test_a_replica_lost_with_its_helper_reruns_on_a_helper_that_had_not_run_it(fleet, cluster):
    add, client = fleet
    add_all(add, "r-1", "r-2", "r-3")
    script = "sleep 2; echo done"
    task_id = client.submit(IMAGE, ["sh", "-c", script], replicas=2, policy={"kind": "all"})[
        "task_id"
    ]
    first = wait_until(
        lambda: [a for a in client.get(task_id)["assignments"] if a["state"] == "running"],
        30,
        "a replica to run",
    )[0]
    cluster.helpers[first["helper_name"]].stop(signal.SIGKILL)
    task = client.wait(task_id, timeout=90, poll=0.2)
    assert task["state"] == "succeeded"
    finished = [a["helper_name"] for a in task["assignments"] if a["state"] == "finished"]
    lost = [a["helper_name"] for a in task["assignments"] if a["state"] == "lost"]
    assert lost == [first["helper_name"]]
    assert len(finished) == 2 and first["helper_name"] not in finished
    assert len(set(finished)) == 2


def test_min_helpers_waits_and_fewer_helpers_run_what_they_can(fleet):
    add, client = fleet
    add_all(add, "m-1")
    waiting = client.submit(IMAGE, ["true"], replicas=2, min_helpers=2)["task_id"]
    partial = client.submit(IMAGE, ["sh", "-c", "sleep 1"], replicas=2, policy={"kind": "all"})
    reason = wait_until(lambda: client.get(waiting)["wait_reason"], 30, "a wait reason")
    assert reason.startswith("waiting for 2 helpers, 1 can take it now")
    assert client.get(waiting)["state"] == "pending"
    wait_until(
        lambda: client.get(partial["task_id"])["state"] in ("running", "dispatched"),
        30,
        "one replica of the partial task to run",
    )
    add_all(add, "m-2")
    assert client.wait(waiting, timeout=60, poll=0.1)["state"] == "succeeded"
    done = client.wait(partial["task_id"], timeout=60, poll=0.1)
    assert done["state"] == "succeeded"
    assert sorted(a["helper_name"] for a in done["assignments"]) == ["m-1", "m-2"]
