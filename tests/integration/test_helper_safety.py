"""The helper keeps its host safe and loses no result: limits, OOM, timeout,
cancel, capped logs, image and mount policy, capabilities, slots, the
durable outbox across a channel outage, and a helper restarted mid-task.
Real processes, real Docker."""

from __future__ import annotations

import secrets
import signal

import pytest
import requests

from helper.outbox import waiting
from seeker.client import SeekerClient
from tests.auth_support import bearer, receipt_for
from tests.integration.conftest import Stack
from tests.integration.harness import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, mongo_url, workload_image):
    """One helper with an image allow-list, one allowed mount and 2 slots."""
    base = tmp_path_factory.mktemp("guarded")
    allowed = base / "shared-data"
    allowed.mkdir()
    (allowed / "hello.txt").write_text("from the host\n")
    s = Stack(
        base,
        mongo_url,
        secrets.token_urlsafe(16),
        secrets.token_hex(4),
        seeker_args=("--probe-interval", "1"),
        with_helper=False,
    )
    s.start()
    s.add_helper(
        "helper-1",
        "--slots",
        "2",
        "--allow-image",
        "seeker-demo:*",
        "--allow-mount",
        str(allowed),
        "--heartbeat",
        "2",
    )
    s.allowed_dir = allowed
    client = SeekerClient(s.seeker_url, s.token)
    wait_until(client.helpers, 30, "the helper to register")
    s.client = client
    yield s
    s.stop()


def run(stack, command, wait=90, **spec) -> tuple[dict, dict]:
    task = stack.client.submit("seeker-demo:latest", command, **spec)
    task = stack.client.wait(task["task_id"], timeout=wait, poll=0.1)
    results = stack.client.results(task["task_id"])
    return task, results[-1] if results else {}


def auth(stack) -> dict:
    return {"Authorization": f"Bearer {stack.token}"}


def as_seeker(stack, helper: dict) -> dict:
    """Headers to push to `helper` directly, as its seeker does."""
    return bearer(stack.seeker_credential(helper["helper_id"]))


def assignment(stack, helper: dict, task_id: str, attempt: int = 1, **fields) -> dict:
    """An assignment as the seeker pushes it, with its receipt."""
    receipt = receipt_for(task_id, helper["helper_id"], attempt, stack.token)
    return {
        "task_id": task_id,
        "attempt": attempt,
        "helper_id": helper["helper_id"],
        "receipt": receipt,
        **fields,
    }


def test_a_container_over_its_memory_limit_is_an_out_of_memory_error(guarded):
    task, result = run(
        guarded,
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
        resources={"memory": "16m"},
    )
    assert task["state"] == "failed"
    assert result["status"] == "error"
    # Docker's OOM flag sometimes trails the exit: then the helper says so less surely
    assert "out of memory" in result["error"]
    assert "16777216" in result["error"]


def test_a_timeout_stops_the_container_and_says_timed_out(guarded):
    task, result = run(guarded, ["sleep", "60"], wait=60, timeout=2)
    assert result["status"] == "timed_out"
    assert "2s timeout" in result["error"]
    assert task["state"] == "failed"


def test_cancel_stops_a_running_container(guarded):
    task_id = guarded.client.submit("seeker-demo:latest", ["sleep", "60"])["task_id"]
    wait_until(lambda: guarded.client.get(task_id)["state"] == "running", 30, "running")
    assert guarded.client.cancel(task_id)["state"] == "cancelled"
    [result] = wait_until(lambda: guarded.client.results(task_id), 30, "the cancelled result")
    assert result["status"] == "cancelled"
    pending = guarded.client.submit("seeker-demo:latest", ["true"], resources={"gpus": 8})[
        "task_id"
    ]  # can never run here
    assert guarded.client.cancel(pending)["state"] == "cancelled"
    assert guarded.client.results(pending) == []


def test_three_mib_of_output_is_cut_to_the_cap_and_kept_whole_as_an_artifact(guarded):
    task, result = run(guarded, ["sh", "-c", "head -c 3145728 /dev/zero | tr '\\0' x"])
    assert task["state"] == "succeeded"
    assert result["stdout_truncated"] is True and len(result["stdout"]) == MiB
    assert result["stderr_truncated"] is False
    logs = [a for a in result.get("artifacts", []) if a["name"] == "logs/stdout.log"]
    assert logs and logs[0]["size"] == 3 * MiB


def test_capabilities_are_dropped_unless_a_safe_one_is_asked_for(guarded):
    _, none = run(guarded, ["grep", "CapEff", "/proc/self/status"])
    _, chown = run(guarded, ["grep", "CapEff", "/proc/self/status"], capabilities=["CHOWN"])
    assert none["stdout"].split() == ["CapEff:", "0000000000000000"]
    assert chown["stdout"].split() == ["CapEff:", "0000000000000001"]


def test_an_allowed_mount_is_read_only_and_others_are_refused(guarded):
    mount = {"source": str(guarded.allowed_dir), "target": "/data"}
    task, result = run(
        guarded, ["sh", "-c", "cat /data/hello.txt; touch /data/x || echo ro"], mounts=[mount]
    )
    assert result["stdout"] == "from the host\nro\n"

    task_id = guarded.client.submit(
        "seeker-demo:latest", ["ls", "/host"], mounts=[{"source": "/etc", "target": "/host"}]
    )["task_id"]
    reason = wait_until(lambda: guarded.client.get(task_id)["wait_reason"], 30, "a reason")
    assert reason == "1 helper: 1 mount not allowed"
    guarded.client.cancel(task_id)


def test_an_image_outside_the_allow_list_is_refused_clearly(guarded, docker_engine):
    docker_engine.images.get("seeker-demo:latest").tag("seeker-other", "latest")
    task_id = guarded.client.submit("seeker-other:latest", ["true"])["task_id"]
    reason = wait_until(lambda: guarded.client.get(task_id)["wait_reason"], 30, "a reason")
    assert reason == "1 helper: 1 image not allowed"
    guarded.client.cancel(task_id)

    # pushed anyway (as the seeker would not): the helper refuses it itself
    helper = guarded.client.helpers()[0]
    pushed = requests.post(
        f"{guarded.helper_urls['helper-1']}/api/v1/assignments",
        headers=as_seeker(guarded, helper),
        timeout=10,
        json=assignment(guarded, helper, "forged", image="seeker-other:latest"),
    )
    assert pushed.status_code == 403
    assert "seeker-other:latest" in pushed.json()["detail"]


def test_a_full_helper_answers_429(guarded):
    # pushed directly, as the seeker would not push to a full helper
    helper = guarded.client.helpers()[0]
    url = f"{guarded.helper_urls['helper-1']}/api/v1/assignments"
    seeker = as_seeker(guarded, helper)
    body = {"image": "seeker-demo:latest", "command": ["sleep", "5"]}
    codes = [
        requests.post(
            url,
            headers=seeker,
            timeout=10,
            json=assignment(guarded, helper, f"direct{i}", **body),
        ).status_code
        for i in range(3)
    ]
    assert codes == [202, 202, 429]
    for i in range(2):
        requests.delete(f"{url}/direct{i}.1", headers=seeker, timeout=10)
    wait_until(
        lambda: (
            not requests.get(
                f"{guarded.helper_urls['helper-1']}/api/v1/status", headers=auth(guarded), timeout=5
            ).json()["running"]
        ),
        30,
        "the direct runs to stop",
    )


def test_results_wait_in_the_outbox_while_the_channel_is_down(guarded):
    guarded.channel.stop(signal.SIGTERM)
    ids = [
        guarded.client.submit("seeker-demo:latest", ["echo", str(i)])["task_id"] for i in range(3)
    ]
    # completions still reach the seeker (their own lane of the outbox) ...
    tasks = [guarded.client.wait(i, timeout=60, poll=0.2) for i in ids]
    assert [t["state"] for t in tasks] == ["succeeded"] * 3
    # ... while the three results wait, on disk, for the channel
    status = f"{guarded.helper_urls['helper-1']}/api/v1/status"
    assert requests.get(status, headers=auth(guarded), timeout=5).json()["outbox"] == 3
    # each run's record, its event delivered and its result kept
    kept = waiting(guarded.base / "helper-1" / "outbox")
    assert [kinds for _, kinds in kept] == [["result", "event"]] * 3
    guarded.channel.start().wait_healthy(guarded.channel_url)

    def delivered(task_id):
        return requests.get(
            f"{guarded.channel_url}/api/v1/results",
            headers=auth(guarded),
            params={"task_id": task_id},
            timeout=5,
        ).json()["results"]

    wait_until(lambda: all(delivered(i) for i in ids), 90, "every result to arrive")
    for n, task_id in enumerate(ids):
        assert [r["stdout"] for r in delivered(task_id)] == [f"{n}\n"]  # once, not twice
    wait_until(
        lambda: requests.get(status, headers=auth(guarded), timeout=5).json()["outbox"] == 0,
        30,
        "the outbox to empty",
    )


def test_a_helper_restarted_mid_task_follows_its_container_to_the_end(guarded):
    task_id = guarded.client.submit("seeker-demo:latest", ["sh", "-c", "sleep 4; echo still here"])[
        "task_id"
    ]
    wait_until(lambda: guarded.client.get(task_id)["state"] == "running", 30, "running")
    helper = guarded.helpers["helper-1"]
    helper.stop(signal.SIGKILL)
    helper.start().wait_healthy(guarded.helper_urls["helper-1"])
    task = guarded.client.wait(task_id, timeout=60, poll=0.2)
    assert task["state"] == "succeeded"
    assert [a["state"] for a in task["assignments"]] == ["finished"]  # not lost, not re-run
    assert guarded.client.results(task_id)[0]["stdout"] == "still here\n"
    assert "took over 1 container" in helper.log(tail=None)
