"""Helper credentials: issued with the join token, kept by the heartbeat,
rotated at the next join, revoked when the helper goes; and what each role
may do at the seeker's API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from seeker.api.app import create_app
from seeker.control.credentials import HelperCredentials
from seeker.control.operations import Seeker
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore
from tests.auth_support import bearer

USER, JOIN = "user-token", "join-token"


class Env:
    def __init__(self, db, clock, join_token: str | None = JOIN):
        self.clock = clock
        self.tasks, self.helpers = TaskStore(db), HelperStore(db)
        self.tasks.ensure_indexes()
        self.helpers.ensure_indexes()
        self.seeker = Seeker(self.tasks, self.helpers, clock=clock)
        app = create_app(seeker=self.seeker, token=USER, join_token=join_token)
        self.client = app.test_client()

    def register(self, secret: str, helper_id="h1", name=None):
        body = {"helper_id": helper_id, "name": name or f"gpu-{helper_id}", "url": "http://h:1"}
        return self.client.post("/api/v1/helpers", json=body, headers=bearer(secret))

    def join(self, helper_id="h1") -> str:
        resp = self.register(JOIN, helper_id)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["credential"]

    def event(self, secret: str, task_id: str, helper_id="h1"):
        body = {"helper_id": helper_id, "attempt": 1, "state": "running"}
        return self.client.post(
            f"/api/v1/tasks/{task_id}/events", json=body, headers=bearer(secret)
        )

    def submit(self) -> str:
        resp = self.client.post("/api/v1/tasks", json={"image": "busybox"}, headers=bearer(USER))
        assert resp.status_code == 201
        return resp.get_json()["task_id"]


@pytest.fixture
def env(mock_db, clock) -> Env:
    return Env(mock_db, clock)


# --- the credential itself ------------------------------------------------------


@pytest.fixture
def creds(helpers, clock) -> HelperCredentials:
    return HelperCredentials(b"k" * 32, helpers, clock)


def issue(helpers, creds, clock, helper_id="h1") -> str:
    nonce = creds.new_nonce()
    helpers.register(
        {"helper_id": helper_id, "name": helper_id, "url": "http://h:1"}, clock(), nonce
    )
    return creds.mint(helper_id, nonce)


def test_a_credential_names_its_helper(helpers, creds, clock):
    cred = issue(helpers, creds, clock, "a.b-c")  # ids may hold dots
    who = creds.verify(cred)
    assert who is not None and who.subject == "a.b-c" and who.has("helper")
    assert creds.for_helper("a.b-c") == cred


@pytest.mark.parametrize(
    "forge",
    [
        lambda c: c[:-1] + ("0" if c[-1] != "0" else "1"),  # another mac
        lambda c: c.replace("h1.", "h2.", 1),  # another helper's id
        lambda c: "hc1." + c.split(".", 1)[1].replace(".", "x", 1),  # another nonce
        lambda c: "hc2." + c.split(".", 1)[1],
        lambda c: "",
        lambda c: "hc1.",
        lambda c: "hc1...",
    ],
)
def test_a_forged_credential_is_refused(helpers, creds, clock, forge):
    cred = issue(helpers, creds, clock)
    issue(helpers, creds, clock, "h2")
    assert creds.verify(forge(cred)) is None


def test_another_seekers_key_makes_no_credential(helpers, creds, clock):
    cred = issue(helpers, creds, clock)
    assert HelperCredentials(b"x" * 32, helpers, clock).verify(cred) is None


def test_a_new_join_rotates_and_the_old_one_lapses_after_the_grace(helpers, creds, clock):
    old = issue(helpers, creds, clock)
    new = issue(helpers, creds, clock)
    assert new != old
    assert creds.verify(new) and creds.verify(old)  # in flight: still good
    clock.advance(creds.grace.total_seconds() + 1)
    assert creds.verify(new) is not None
    assert creds.verify(old) is None


def test_removing_the_helper_revokes_its_credential(helpers, creds, clock):
    cred = issue(helpers, creds, clock)
    assert helpers.remove("h1")
    assert creds.verify(cred) is None
    assert creds.for_helper("h1") is None


def test_the_database_never_holds_the_credential(helpers, creds, clock, mock_db):
    cred = issue(helpers, creds, clock)
    stored = str(list(mock_db["helpers"].find()))
    assert cred.rsplit(".", 1)[1] not in stored  # the mac: only the key makes it
    assert "auth" not in helpers.get("h1") and all("auth" not in h for h in helpers.list())


# --- through the API ------------------------------------------------------------------


def test_joining_returns_a_credential_once_and_the_heartbeat_keeps_it(env):
    cred = env.join()
    heartbeat = env.register(cred)
    assert heartbeat.status_code == 200
    assert "credential" not in heartbeat.get_json()
    assert env.register(cred).status_code == 200  # still good


def test_the_join_token_cannot_take_over_a_helper_that_is_online(env, clock):
    cred = env.join()
    resp = env.register(JOIN)  # the same helper id, with the join token
    assert resp.status_code == 409, resp.get_json()
    assert "registered and online" in resp.get_json()["error"]
    assert env.register(cred).status_code == 200  # the helper itself is unaffected


def test_a_silent_helper_may_join_again_and_its_old_credential_lapses(env, clock):
    first = env.join()
    clock.advance(env.seeker.health.liveness.total_seconds() + 1)  # lost its credential file?
    second = env.join()
    assert first != second
    clock.advance(61)
    assert env.register(first).status_code == 401
    assert env.register(second).status_code == 200


def test_a_restarted_helper_registers_with_its_credential_and_gets_a_new_one(env, clock):
    old = env.join()
    body = {"helper_id": "h1", "name": "gpu-h1", "url": "http://h:1", "boot_id": "second"}
    resp = env.client.post("/api/v1/helpers", json=body, headers=bearer(old))
    new = resp.get_json()["credential"]
    assert resp.status_code == 200 and new != old
    again = env.client.post("/api/v1/helpers", json=body, headers=bearer(new))
    assert again.status_code == 200 and "credential" not in again.get_json()
    clock.advance(61)
    assert env.register(old).status_code == 401


def test_the_credential_is_never_listed(env):
    cred = env.join()
    listed = env.client.get("/api/v1/helpers", headers=bearer(USER)).get_data(as_text=True)
    assert "h1" in listed and cred not in listed and "nonce" not in listed


def test_a_removed_helpers_credential_is_refused(env):
    cred = env.join()
    assert env.client.delete("/api/v1/helpers/h1", headers=bearer(USER)).status_code == 200
    resp = env.register(cred)
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid token"
    assert env.join() != cred  # joining again gives a new one


def test_a_purged_helpers_credential_is_refused(env, clock):
    cred = env.join()
    for _ in range(3):
        env.seeker.health.contact_failed("h1", "gpu-h1", "connection refused")
    assert env.helpers.get("h1") is None
    assert env.register(cred).status_code == 401


def test_a_helper_may_not_register_or_report_for_another(env):
    cred, _ = env.join("h1"), env.join("h2")
    resp = env.register(cred, helper_id="h2")
    assert resp.status_code == 403 and "belongs to helper h1" in resp.get_json()["detail"]
    task_id = env.submit()
    resp = env.event(cred, task_id, helper_id="h2")
    assert resp.status_code == 403 and "own assignments" in resp.get_json()["error"]


def test_each_secret_may_do_only_its_own_part(env):
    cred = env.join()
    task_id = env.submit()
    # the user token neither reports as a helper nor, with a join token set, registers one
    assert env.event(USER, task_id).status_code == 403
    assert env.register(USER).status_code == 403
    # the join token and a helper credential read and submit nothing
    for secret in (JOIN, cred):
        assert env.client.get("/api/v1/tasks", headers=bearer(secret)).status_code == 403
        resp = env.client.post("/api/v1/tasks", json={"image": "x"}, headers=bearer(secret))
        assert resp.status_code == 403
    assert env.event(JOIN, task_id).status_code == 403
    assert env.event(cred, task_id).status_code == 200  # its own: fine


def test_without_a_join_token_the_user_token_registers(mock_db, clock):
    env = Env(mock_db, clock, join_token=None)
    resp = env.register(USER)
    assert resp.status_code == 200 and resp.get_json()["credential"].startswith("hc1.h1.")


def test_forbidden_says_which_secret_the_route_takes(env):
    resp = env.event(USER, env.submit())
    detail = resp.get_json()["detail"]
    assert "needs a helper credential" in detail and "this one is a user credential" in detail


def test_grace_is_a_minute(creds):
    assert creds.grace == timedelta(seconds=60)
