"""Per-role secrets with real processes: a user token, a join token, a
receipt key shared by seeker and channel, and a helper operator's token, all
different. Work runs end to end; every other use of each secret is refused;
a removed helper's credential is revoked and the helper joins again; and no
secret reaches any log, even at debug level."""

from __future__ import annotations

import secrets

import pytest
import requests

from seeker.client import SeekerClient
from serving import receipts
from tests.auth_support import bearer
from tests.integration.conftest import db_url
from tests.integration.harness import Service, cli, free_ports, stop_all, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]


class Secured:
    def __init__(self, base, mongo_url):
        self.base = base
        self.user, self.join, self.operator = (secrets.token_urlsafe(16) for _ in range(3))
        self.receipt_key = secrets.token_urlsafe(24)
        ports = free_ports(3)
        self.channel_url, self.seeker_url, self.helper_url = (
            f"http://127.0.0.1:{p}" for p in ports
        )
        prefix = secrets.token_hex(4)
        debug = ["--log-level", "debug"]
        self.channel = Service(
            "channel",
            ["channel", "start", "--port", str(ports[0]), "--data-dir", str(base / "channel"),
             "--mongo-url", db_url(mongo_url, prefix + "_channel"), *debug],
            base,
            {"SEEKER_TOKEN": self.user, "SEEKER_RECEIPT_KEY": self.receipt_key},
        )  # fmt: skip
        self.seeker = Service(
            "seeker",
            ["seeker", "start", "--port", str(ports[1]), "--data-dir", str(base / "seeker"),
             "--mongo-url", db_url(mongo_url, prefix + "_seeker"),
             "--channel-url", self.channel_url, *debug],
            base,
            {
                "SEEKER_TOKEN": self.user,
                "SEEKER_JOIN_TOKEN": self.join,
                "SEEKER_RECEIPT_KEY": self.receipt_key,
            },
        )  # fmt: skip
        self.helper = Service(
            "helper",
            ["helper", "start", "--port", str(ports[2]), "--name", "sec-1",
             "--data-dir", str(base / "helper"), "--seeker-url", self.seeker_url,
             "--channel-url", self.channel_url, "--heartbeat", "0.5", "--slots", "2", *debug],
            base,
            {"SEEKER_TOKEN": self.operator, "SEEKER_JOIN_TOKEN": self.join},
        )  # fmt: skip
        self.client = SeekerClient(self.seeker_url, self.user)

    def start(self):
        for svc, _ in self.services():
            svc.start()
        for svc, url in self.services():
            svc.wait_healthy(url)
        wait_until(lambda: self.client.helpers(), 30, "the helper to register")
        return self

    def services(self):
        return [
            (self.channel, self.channel_url),
            (self.seeker, self.seeker_url),
            (self.helper, self.helper_url),
        ]

    def stop(self):
        stop_all(svc for svc, _ in reversed(self.services()))

    def helper_id(self) -> str:
        return next(h["helper_id"] for h in self.client.helpers() if h["name"] == "sec-1")

    def run(self, *command: str) -> dict:
        task = self.client.submit("seeker-demo:latest", list(command))
        return wait_until(
            lambda: (
                (t := self.client.get(task["task_id"]))["state"] in ("succeeded", "failed") and t
            ),
            90,
            "the task to end",
        )


@pytest.fixture(scope="module")
def secured(tmp_path_factory, mongo_url, workload_image):
    s = Secured(tmp_path_factory.mktemp("secured"), mongo_url)
    try:
        yield s.start()
    finally:
        s.stop()


def test_work_runs_end_to_end_with_every_secret_different(secured):
    done = secured.run("echo", "hello from a trusted run")
    assert done["state"] == "succeeded", done
    results = secured.client.results(done["task_id"])
    assert [r["stdout"] for r in results] == ["hello from a trusted run\n"]


def test_the_cli_works_with_the_user_token(secured):
    out = cli("submit", "--wait", "seeker-demo:latest", "--", "true",
              token=secured.user, seeker_url=secured.seeker_url)  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = cli("tasks", token=secured.join, seeker_url=secured.seeker_url)
    assert out.returncode != 0 and "needs a user credential" in out.stderr


def test_the_helper_takes_assignments_from_nobody_but_its_seeker(secured):
    helper_id = secured.helper_id()
    body = {
        "task_id": "forged",
        "attempt": 1,
        "helper_id": helper_id,
        "image": "seeker-demo:latest",
        "command": ["echo", "pwned"],
        "receipt": receipts.sign(secured.receipt_key.encode(), "forged", helper_id, 1),
    }
    url = f"{secured.helper_url}/api/v1/assignments"
    answers = {
        "none": requests.post(url, json=body, timeout=10).status_code,
        "user": requests.post(url, json=body, headers=bearer(secured.user), timeout=10).status_code,
        "join": requests.post(url, json=body, headers=bearer(secured.join), timeout=10).status_code,
        "operator": requests.post(
            url, json=body, headers=bearer(secured.operator), timeout=10
        ).status_code,
    }
    assert answers == {"none": 401, "user": 401, "join": 401, "operator": 403}
    status = requests.get(
        f"{secured.helper_url}/api/v1/status", headers=bearer(secured.operator), timeout=10
    )
    assert status.ok and all(r["task_id"] != "forged" for r in status.json()["running"])


def test_the_channel_stores_no_forged_result(secured):
    done = secured.run("echo", "real")
    task_id, real = done["task_id"], done["result"]
    forged = {
        "task_id": task_id,
        "helper_id": "intruder",
        "helper_name": "intruder",
        "attempt": real["attempt"] + 1,
        "image": "seeker-demo:latest",
        "status": "succeeded",
        "exit_code": 0,
        "stdout": "forged\n",
        "output_digest": "sha256:" + "0" * 64,
        "finished_at": "2026-01-01T00:00:00+00:00",
        "sent_at": "2026-01-01T00:00:00+00:00",
    }
    url = f"{secured.channel_url}/api/v1/results"
    key = secured.receipt_key.encode()
    tries = {
        # the user token, the join token, a receipt from the wrong key, and
        # a real-key receipt for another helper's attempt
        "user": bearer(secured.user),
        "join": bearer(secured.join),
        "wrong key": bearer(receipts.sign(b"guess", task_id, "intruder", forged["attempt"])),
        "other helper": bearer(receipts.sign(key, task_id, real["helper_id"], forged["attempt"])),
    }
    answers = {
        k: requests.post(url, json=forged, headers=h, timeout=10).status_code
        for k, h in tries.items()
    }
    assert answers == {"user": 403, "join": 401, "wrong key": 403, "other helper": 403}
    stored = secured.client.results(task_id)
    assert [r["stdout"] for r in stored] == ["real\n"]


def test_a_join_token_holder_cannot_report_for_the_real_helper(secured):
    intruder = requests.post(
        f"{secured.seeker_url}/api/v1/helpers",
        json={"helper_id": "intruder", "name": "intruder", "url": "http://127.0.0.1:9"},
        headers=bearer(secured.join),
        timeout=10,
    )
    assert intruder.status_code == 200
    credential = intruder.json()["credential"]
    task = secured.client.submit("seeker-demo:latest", ["sleep", "2"])
    event = {"helper_id": secured.helper_id(), "attempt": 1, "state": "finished",
             "status": "failed", "exit_code": 1}  # fmt: skip
    resp = requests.post(
        f"{secured.seeker_url}/api/v1/tasks/{task['task_id']}/events",
        json=event,
        headers=bearer(credential),
        timeout=10,
    )
    assert resp.status_code == 403
    secured.client.remove_helper("intruder")
    done = wait_until(
        lambda: (
            (t := secured.client.get(task["task_id"]))["state"] in ("succeeded", "failed") and t
        ),
        90,
        "the task to end",
    )
    assert done["state"] == "succeeded"


def test_a_removed_helper_is_revoked_then_joins_again_and_works(secured):
    helper_id = secured.helper_id()
    secured.client.remove_helper(helper_id)
    wait_until(
        lambda: "registering again with the join token" in secured.helper.log(None),
        30,
        "the helper to find its credential revoked",
    )
    wait_until(
        lambda: any(h["name"] == "sec-1" for h in secured.client.helpers()),
        30,
        "the helper to join again",
    )
    assert secured.run("echo", "after rejoining")["state"] == "succeeded"


def test_the_join_token_cannot_take_over_a_running_helper(secured):
    helper_id = secured.helper_id()
    takeover = requests.post(
        f"{secured.seeker_url}/api/v1/helpers",
        json={"helper_id": helper_id, "name": "sec-1", "url": "http://127.0.0.1:9"},
        headers=bearer(secured.join),
        timeout=10,
    )
    assert takeover.status_code == 409, takeover.text
    assert "registered and online" in takeover.json()["error"]
    helper = next(h for h in secured.client.helpers() if h["helper_id"] == helper_id)
    assert helper["url"] == secured.helper_url


def test_a_restarted_helper_comes_back_with_its_credential_which_rotates(secured):
    kept = secured.base / "helper" / "credential"
    before = kept.read_text().strip()
    assert kept.stat().st_mode & 0o777 == 0o600
    assert secured.helper.stop() == 0
    secured.helper.start().wait_healthy(secured.helper_url)
    wait_until(
        lambda: kept.read_text().strip() != before, 30, "the restarted helper's new credential"
    )

    def since_restart() -> str:
        return secured.helper.log(None).rpartition("shutting down")[2]

    # the helper saves its new credential, then logs that it registered
    wait_until(lambda: "registered as sec-1" in since_restart(), 30, "the registration's log line")
    assert "registering again with the join token" not in since_restart()
    assert secured.run("echo", "after a restart")["state"] == "succeeded"


def test_no_secret_reaches_any_log(secured):
    logs = "\n".join(svc.log(None) for svc, _ in secured.services())
    assert "Authorization" not in logs
    for name, secret in {
        "user token": secured.user,
        "join token": secured.join,
        "operator token": secured.operator,
        "receipt key": secured.receipt_key,
    }.items():
        assert secret not in logs, f"the {name} is in a log"
    assert "hc1." not in logs and "rcpt1." not in logs, "a credential or receipt is in a log"
