"""The whole round trip with three real processes, real Docker and a real
wire-protocol database: submit, run, store, query."""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest
import requests

from tests.auth_support import WELL_FORMED_RECEIPT, bearer
from tests.integration.harness import cli, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]

RESULT_FIELDS = {
    "task_id",
    "helper_id",
    "attempt",
    "sent_at",
    "received_at",
    "started_at",
    "finished_at",
    "status",
    "exit_code",
    "stdout",
    "stderr",
    "stdout_truncated",
    "stderr_truncated",
    "output_digest",
    "image",
}


def auth(stack) -> dict:
    return {"Authorization": f"Bearer {stack.token}"}


@pytest.fixture(scope="module")
def registered(stack):
    wait_until(
        lambda: requests.get(
            f"{stack.seeker_url}/api/v1/helpers", headers=auth(stack), timeout=5
        ).json()["helpers"],
        30,
        "the helper to register",
    )
    return stack


def submit(stack, *args: str):
    out = cli("submit", "--json", "--wait", *args, token=stack.token, seeker_url=stack.seeker_url)
    assert out.stdout, f"no output; stderr: {out.stderr}\n{stack.logs()}"
    return out.returncode, json.loads(out.stdout)


def test_a_container_runs_and_its_result_is_queryable_from_the_channel(registered, workload_image):
    code, body = submit(
        registered, workload_image, "--", "sh", "-c", "echo out-line; echo err-line >&2"
    )
    task = body["task"]
    assert code == 0, registered.logs()
    assert task["state"] == "succeeded"
    assert [h["state"] for h in task["history"]] == [
        "pending",
        "dispatched",
        "running",
        "succeeded",
    ]

    page = requests.get(
        f"{registered.channel_url}/api/v1/results",
        params={"task_id": task["task_id"]},
        headers=auth(registered),
        timeout=10,
    ).json()
    [result] = page["results"]
    assert set(result) >= RESULT_FIELDS
    assert result["status"] == "succeeded" and result["exit_code"] == 0
    assert result["stdout"] == "out-line\n" and result["stderr"] == "err-line\n"
    assert result["stdout_truncated"] is False
    assert result["helper_id"] == task["result"]["helper_id"]
    assert result["output_digest"] == task["result"]["output_digest"]
    assert result["started_at"] <= result["finished_at"] <= result["received_at"]

    shown = cli(
        "results",
        task["task_id"],
        "--json",
        token=registered.token,
        seeker_url=registered.seeker_url,
    )
    assert shown.returncode == 0, shown.stderr
    [via_seeker] = json.loads(shown.stdout)
    assert via_seeker["result_id"] == result["result_id"] and via_seeker["canonical"] is True


def test_a_non_zero_exit_is_a_failed_result_with_its_code(registered, workload_image):
    code, body = submit(registered, workload_image, "--", "sh", "-c", "echo bad >&2; exit 7")
    assert code == 7
    assert body["task"]["state"] == "failed"
    assert "exit" in body["task"]["error"] and "7" in body["task"]["error"]
    [result] = body["results"]
    assert (result["status"], result["exit_code"], result["stderr"]) == ("failed", 7, "bad\n")

    status = cli(
        "status", body["task"]["task_id"], token=registered.token, seeker_url=registered.seeker_url
    )
    assert status.returncode == 0
    assert "failed" in status.stdout and "exited with code 7" in status.stdout


def test_a_missing_image_is_an_error_that_names_the_image(registered):
    code, body = submit(registered, "seeker-test/no-such-image:0", "--", "true")
    assert code != 0
    [result] = body["results"]
    assert result["status"] == "error"
    assert result["exit_code"] is None
    assert "seeker-test/no-such-image:0" in result["error"]
    assert "seeker-test/no-such-image:0" in body["task"]["error"]


@pytest.mark.parametrize("service", ["seeker", "channel", "helper"])
def test_every_service_wants_the_token(registered, service):
    url = getattr(registered, f"{service}_url")
    path = {
        "seeker": "/api/v1/tasks",
        "channel": "/api/v1/results?task_id=x",
        "helper": "/api/v1/status",
    }[service]
    missing = requests.get(url + path, timeout=5)
    wrong = requests.get(url + path, headers={"Authorization": "Bearer nope"}, timeout=5)
    right = requests.get(url + path, headers=auth(registered), timeout=5)
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert missing.json()["error"] == "missing token"
    assert requests.get(url + "/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize(
    "service,path",
    [
        ("seeker", "/api/v1/tasks"),
        ("channel", "/api/v1/results"),
        ("helper", "/api/v1/assignments"),
    ],
)
def test_malformed_json_is_a_400_and_a_missing_field_a_422_naming_it(registered, service, path):
    url = getattr(registered, f"{service}_url") + path
    # each with the secret the route takes: the user token at the seeker, a
    # receipt at the channel (matched with the body, once it is read), the
    # seeker's credential at the helper
    if service == "channel":
        secret = bearer(WELL_FORMED_RECEIPT)
    elif service == "helper":
        [helper] = requests.get(
            f"{registered.seeker_url}/api/v1/helpers", headers=auth(registered), timeout=5
        ).json()["helpers"]
        secret = bearer(registered.seeker_credential(helper["helper_id"]))
    else:
        secret = auth(registered)
    headers = {**secret, "Content-Type": "application/json"}
    bad = requests.post(url, data="{not json", headers=headers, timeout=5)
    assert bad.status_code == 400
    assert bad.json()["error"] == "malformed JSON"
    empty = requests.post(url, json={}, headers=secret, timeout=5)
    assert empty.status_code == 422
    fields = {d["field"] for d in empty.json()["detail"]}
    assert {"seeker": "image", "channel": "task_id", "helper": "task_id"}[service] in fields


def test_cli_errors_are_one_line_not_a_traceback(registered):
    out = cli("status", "no-such-task", token=registered.token, seeker_url=registered.seeker_url)
    assert out.returncode == 1
    assert out.stderr.strip() == "Error: no such task (no-such-task)"
    out = cli("helpers", token="wrong", seeker_url=registered.seeker_url)
    assert out.returncode == 1 and "invalid token" in out.stderr and "Traceback" not in out.stderr


def test_output_files_come_back_byte_for_byte(registered, workload_image, tmp_path):
    script = (
        "mkdir -p /output/sub && head -c 2000000 /dev/urandom > /output/sub/data.bin "
        "&& sha256sum /output/sub/data.bin"
    )
    code, body = submit(registered, workload_image, "--", "sh", "-c", script)
    assert code == 0, registered.logs()
    [result] = body["results"]
    printed = result["stdout"].split()[0]
    assert [a["name"] for a in result["artifacts"]] == ["output.tar"]

    out = cli(
        "results",
        body["task"]["task_id"],
        "--download",
        str(tmp_path / "dl"),
        "--json",
        token=registered.token,
        seeker_url=registered.seeker_url,
    )
    assert out.returncode == 0, out.stderr
    [saved] = json.loads(out.stdout)
    assert saved.endswith("helper-1-1/output.tar")
    with tarfile.open(saved) as tar:
        data = tar.extractfile("output/sub/data.bin").read()
    assert len(data) == 2000000
    assert hashlib.sha256(data).hexdigest() == printed


def test_pull_policy_never_does_not_try_the_registry(registered):
    code, body = submit(registered, "--pull", "never", "seeker-test/absent:1", "--", "true")
    assert code == 1
    [result] = body["results"]
    assert result["status"] == "error"
    assert result["error"] == (
        "image 'seeker-test/absent:1' is not on this host and the task's pull policy is 'never'"
    )
