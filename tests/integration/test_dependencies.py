"""Dependencies with real processes and real Docker: a task `--after`
another runs only once it succeeded; when one fails or is cancelled, what
runs after it is cancelled with that reason, and so on down the chain."""

from __future__ import annotations

import json

import pytest

from seeker.client import SeekerClient
from tests.integration.harness import cli, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@pytest.fixture(scope="module")
def client(stack) -> SeekerClient:
    c = SeekerClient(stack.seeker_url, stack.token)
    wait_until(lambda: c.helpers(), 30, "the helper to register")
    return c


def seeker(stack, *args: str):
    return cli(*args, token=stack.token, seeker_url=stack.seeker_url)


def submit(stack, *args: str) -> str:
    out = seeker(stack, "submit", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def at(task: dict, state: str):
    return next(h["at"] for h in task["history"] if h["state"] == state)


def test_after_holds_a_task_until_the_one_before_succeeded(stack, client, workload_image):
    # long enough for two CLI processes on a loaded machine: it must still run
    first = submit(stack, workload_image, "--", "sh", "-c", "sleep 8; echo first")
    second = submit(stack, "--after", first, workload_image, "--", "echo", "second")
    status = seeker(stack, "status", second)
    assert f"waiting   waiting for 1 task(s) to succeed: {first}" in status.stdout
    assert f"after     {first}" in status.stdout
    done = client.wait(second, timeout=120)
    assert done["state"] == "succeeded", stack.logs()
    before = client.get(first)
    # the seeker placed the second only after it had decided the first (one clock)
    assert at(done, "dispatched") >= at(before, "succeeded")
    # and the helper started it after the first ended (the helper's clock)
    assert done["assignments"][0]["started_at"] >= before["assignments"][0]["finished_at"]


def test_a_failure_cancels_what_runs_after_it_down_the_chain(stack, client, workload_image):
    # b and c go in through the client, milliseconds apart, while a runs: by
    # the CLI (a process each) c could come after b was cancelled, and be
    # cancelled on its insert for "dependency b cancelled" alone
    a = submit(stack, workload_image, "--", "sh", "-c", "sleep 2; exit 3")
    b = client.submit(workload_image, ["echo", "b"], after=[a])["task_id"]
    c = client.submit(workload_image, ["echo", "c"], after=[b])["task_id"]
    assert client.wait(a, timeout=120)["state"] == "failed"
    b_task = client.wait(b, timeout=30)
    c_task = client.wait(c, timeout=30)
    assert (b_task["state"], b_task["error"]) == ("cancelled", f"dependency {a} failed")
    assert (c_task["state"], c_task["error"]) == (
        "cancelled",
        f"dependency {b} cancelled (dependency {a} failed)",
    )
    assert b_task["assignments"] == [] and c_task["assignments"] == []


def test_cancelling_a_task_cancels_what_runs_after_it(stack, client, workload_image):
    a = submit(stack, workload_image, "--", "sleep", "60")
    b = submit(stack, "--after", a, "--json", workload_image, "--", "echo", "b")
    b = json.loads(b)["task_id"]
    wait_until(lambda: client.get(a)["state"] == "running", 60, "the first task to run")
    out = seeker(stack, "cancel", a)
    assert out.returncode == 0 and out.stdout.strip() == f"task {a} cancelled"
    task = client.wait(b, timeout=30)
    assert (task["state"], task["error"]) == ("cancelled", f"dependency {a} cancelled")
    assert client.wait(a, timeout=30)["state"] == "cancelled"
    # the stopped run is reported (and its container removed) before the helper goes
    wait_until(lambda: client.results(a), 60, "the stopped run's result")
    assert [r["status"] for r in client.results(a)] == ["cancelled"]


def test_after_an_unknown_task_is_refused(stack, workload_image):
    out = seeker(stack, "submit", "--after", "0000000000000000", workload_image, "--", "true")
    assert out.returncode == 1
    assert "after.0: no such task: 0000000000000000" in out.stderr
