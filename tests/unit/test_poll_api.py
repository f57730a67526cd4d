"""The long-poll route of pulling helpers through Flask's test client (which
cannot park a request, so an empty poll is answered at once): registration
without a URL, its own work only, offers with their receipts, acknowledgement
that says whether to run, stops in the registration answer."""

from __future__ import annotations

import pytest

from seeker.api.app import create_app
from seeker.control.dispatch_state import assignment_payload
from seeker.control.dispatcher import Dispatcher
from seeker.control.mailbox import Mailbox
from seeker.control.operations import Seeker
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore
from tests.auth_support import bearer

USER = bearer("t")


class Env:
    def __init__(self, db, clock):
        self.clock = clock
        self.tasks, self.helpers = TaskStore(db), HelperStore(db)
        self.woken: list[str] = []
        self.seeker = Seeker(self.tasks, self.helpers, clock=clock, poll_wait=20)

        def payload(task, helper, attempt, reservation):
            return {**assignment_payload(task, helper, attempt, reservation), "receipt": "r"}

        self.mailbox = Mailbox(
            self.tasks, self.seeker.health, clock, payload, wake=self.woken.append
        )
        self.seeker.mailbox = self.mailbox
        self.dispatcher = Dispatcher(
            self.tasks,
            self.helpers,
            push=lambda h, a: pytest.fail("a pulling helper was pushed to"),
            clock=clock,
            health=self.seeker.health,
            mailbox=self.mailbox,
        )
        self.client = create_app(seeker=self.seeker, token="t").test_client()
        self.credentials: dict[str, str] = {}

    def join(self, helper_id: str, mode: str = "pull", **fields):
        body = {"helper_id": helper_id, "name": helper_id, "mode": mode, **fields}
        resp = self.client.post("/api/v1/helpers", json=body, headers=USER)
        if resp.status_code == 200:
            self.credentials[helper_id] = resp.get_json()["credential"]
        return resp

    def poll(self, helper_id: str, as_helper: str | None = None, **body):
        body = {"boot_id": "boot-1", "wait": 0, **body}
        headers = bearer(self.credentials[as_helper or helper_id])
        return self.client.post(f"/api/v1/helpers/{helper_id}/work", json=body, headers=headers)

    def report(self, helper_id: str, task_id: str, **event):
        event = {"helper_id": helper_id, "attempt": 1, **event}
        headers = bearer(self.credentials[helper_id])
        return self.client.post(f"/api/v1/tasks/{task_id}/events", json=event, headers=headers)

    def submit(self) -> str:
        resp = self.client.post("/api/v1/tasks", json={"image": "busybox"}, headers=USER)
        return resp.get_json()["task_id"]


@pytest.fixture
def env(mock_db, clock) -> Env:
    return Env(mock_db, clock)


def test_a_pulling_helper_registers_without_a_url_and_is_listed_as_pulling(env):
    resp = env.join("nat")
    assert resp.status_code == 200, resp.get_json()
    (h,) = env.client.get("/api/v1/helpers", headers=USER).get_json()["helpers"]
    assert (h["mode"], h["url"], h["online"]) == ("pull", None, True)


def test_a_pushed_helper_still_needs_a_url(env):
    resp = env.join("no-url", mode="push")
    assert resp.status_code == 422
    assert "needs a url" in str(resp.get_json()["detail"])


def test_a_poll_with_nothing_to_do_is_answered_empty_with_the_seekers_wait(env):
    env.join("nat")
    resp = env.poll("nat")
    assert resp.status_code == 200
    assert resp.get_json() == {"assignments": [], "stop": [], "wait": 20, "heartbeat": 15.0}


def test_a_helper_polls_for_its_own_work_only(env):
    env.join("nat")
    env.join("other")
    resp = env.poll("other", as_helper="nat")
    assert resp.status_code == 403
    assert "only poll for its own work" in resp.get_json()["error"]
    resp = env.client.post(
        "/api/v1/helpers/nat/work", json={"boot_id": "b"}, headers=USER
    )  # the user token is not a helper
    assert resp.status_code == 403


def test_a_pushed_helper_may_not_poll(env):
    env.join("pushed", mode="push", url="http://h:7072")
    resp = env.poll("pushed")
    assert resp.status_code == 409
    assert "push mode" in resp.get_json()["error"]


def test_an_offer_comes_with_its_receipt_and_runs_once_acknowledged(env):
    env.join("nat")
    task_id = env.submit()
    assert env.dispatcher.dispatch_pending() == 1
    assert env.woken == ["nat"]
    work = env.poll("nat").get_json()
    (offer,) = work["assignments"]
    assert (offer["task_id"], offer["attempt"], offer["helper_id"]) == (task_id, 1, "nat")
    assert offer["receipt"] == "r"
    ack = env.report("nat", task_id, state="accepted", boot_id="boot-1").get_json()
    assert ack["run"] is True
    again = env.report("nat", task_id, state="accepted", boot_id="boot-2").get_json()
    assert again["run"] is False  # another process of it: never
    assert env.poll("nat", running=[f"{task_id}.1"]).get_json()["assignments"] == []


def test_a_cancelled_run_is_stopped_at_the_next_poll_and_wakes_it(env):
    env.join("nat")
    task_id = env.submit()
    env.dispatcher.dispatch_pending()
    env.report("nat", task_id, state="accepted", boot_id="boot-1")
    env.woken.clear()
    assert env.client.delete(f"/api/v1/tasks/{task_id}", headers=USER).status_code == 200
    assert env.woken == ["nat"]
    assert env.poll("nat", running=[f"{task_id}.1"]).get_json()["stop"] == [f"{task_id}.1"]


def test_a_refusal_gives_the_replica_back(env):
    env.join("nat")
    task_id = env.submit()
    env.dispatcher.dispatch_pending()
    resp = env.report("nat", task_id, state="push_failed", error="nat refused it: helper is full")
    assert resp.get_json()["recorded"] is True
    task = env.client.get(f"/api/v1/tasks/{task_id}", headers=USER).get_json()
    assert task["state"] == "pending"
    assert task["assignments"][0]["error"] == "nat refused it: helper is full"


def test_the_heartbeat_answer_says_which_runs_to_stop(env):
    env.join("pushed", mode="push", url="http://h:7072")
    body = {"helper_id": "pushed", "name": "pushed", "url": "http://h:7072"}
    headers = bearer(env.credentials["pushed"])
    resp = env.client.post("/api/v1/helpers", json={**body, "running": ["gone.1"]}, headers=headers)
    assert resp.get_json()["stop"] == ["gone.1"]


def test_in_a_large_fleet_a_poll_waits_as_long_as_a_heartbeats_interval(env):
    """The polls of a pulling fleet are its heartbeats: past 1,250 helpers
    they wait helpers / 50 s (5,000: 100 s), as heartbeats are spaced, and
    the interval its liveness follows is the wait it was given."""
    env.join("nat")
    env.seeker.health._fleet = (env.clock(), 5_000)  # as counted
    assert env.poll("nat", wait=300).get_json()["wait"] == 100.0
    env.seeker.health.flush()
    assert env.helpers.get("nat")["heartbeat"] == 100.0
    env.poll("nat", wait=30)  # its own --poll-wait is shorter: so is its deadline
    env.seeker.health.flush()
    assert env.helpers.get("nat")["heartbeat"] == 30.0
    env.poll("nat", wait=30, heartbeat=2)  # and it beats every 2 s besides
    env.seeker.health.flush()
    assert env.helpers.get("nat")["heartbeat"] == 2.0
    env.seeker.health._fleet = (env.clock(), 100_000)
    assert env.poll("nat").get_json()["wait"] == 300.0  # the most a poll waits


def test_polls_that_began_together_drift_apart(env):
    """A parked poll waits its wait less up to a tenth, at random: a fleet
    whose polls began at once (back after a seeker restart) spreads out."""
    draws = iter([0.0, 0.5, 1.0])
    waits = [env.seeker.parked_wait(300, draw=lambda: next(draws)) for _ in range(3)]
    assert waits == [20.0, 19.0, 18.0]  # the seeker's 20 s, less 0-10%
    assert env.seeker.parked_wait(5, draw=lambda: 1.0) == 4.5  # the helper's own, less 10%
    spread = {env.seeker.parked_wait(20) for _ in range(20)}
    assert len(spread) > 1 and all(18.0 <= w <= 20.0 for w in spread)


def test_a_pulling_helpers_heartbeat_leaves_its_poll_interval_alone(env):
    env.join("nat", boot_id="boot-1")
    assert env.helpers.get("nat")["heartbeat"] == 20  # its polls wait 20 s here
    env.seeker.health._fleet = (env.clock(), 5_000)
    env.poll("nat", wait=100)
    cred = bearer(env.credentials["nat"])
    beat = {"boot_id": "boot-1", "heartbeat": 10}
    resp = env.client.post("/api/v1/helpers/nat/heartbeat", json=beat, headers=cred)
    assert resp.status_code == 200
    env.seeker.health.flush()
    assert env.helpers.get("nat")["heartbeat"] == 100.0
