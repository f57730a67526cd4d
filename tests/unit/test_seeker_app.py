"""The seeker's REST API through Flask's test client, over mongomock."""

from __future__ import annotations

import pytest

from seeker.api.app import create_app
from seeker.client import SeekerClient
from seeker.control.dispatcher import Dispatcher
from seeker.control.operations import Seeker
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore
from serving.wsgi import BackgroundServer
from tests.auth_support import bearer

AUTH = {"Authorization": "Bearer t"}  # the user token, which is also the join token here
DIGEST = "sha256:" + "b" * 64


class Env:
    def __init__(self, db, clock):
        self.clock = clock
        self.tasks, self.helpers = TaskStore(db), HelperStore(db)
        self.tasks.ensure_indexes()
        self.helpers.ensure_indexes()
        self.kicks = 0
        self.pushed: list[dict] = []
        self.credentials: dict[str, str] = {}  # helper id -> the credential it was issued
        self.seeker = Seeker(self.tasks, self.helpers, clock=clock, kick=self._kick)
        self.client = create_app(seeker=self.seeker, token="t").test_client()
        self.dispatcher = Dispatcher(
            self.tasks, self.helpers, push=lambda h, a: self.pushed.append(a), clock=clock
        )

    def _kick(self):
        self.kicks += 1

    def post(self, path, payload):
        return self.client.post(f"/api/v1{path}", json=payload, headers=AUTH)

    def get(self, path):
        return self.client.get(f"/api/v1{path}", headers=AUTH)

    def delete(self, path):
        return self.client.delete(f"/api/v1{path}", headers=AUTH)

    def submit(self, **spec) -> str:
        resp = self.post("/tasks", {"image": "busybox:1.36", **spec})
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()["task_id"]

    def register(self, helper_id="h1", name="gpu-1", **fields):
        body = {"helper_id": helper_id, "name": name, "url": "http://10.0.0.1:7072", **fields}
        resp = self.post("/helpers", body)
        if resp.status_code == 200:
            self.credentials[helper_id] = resp.get_json()["credential"]
        return resp

    def event(self, task_id, state, attempt=1, helper_id="h1", **fields):
        """Report as the helper does: with the credential it was issued."""
        body = {"helper_id": helper_id, "attempt": attempt, "state": state, **fields}
        headers = bearer(self.credentials[helper_id])
        return self.client.post(f"/api/v1/tasks/{task_id}/events", json=body, headers=headers)


@pytest.fixture
def env(mock_db, clock) -> Env:
    return Env(mock_db, clock)


def test_token_is_required_but_healthz_is_open(env):
    resp = env.client.get("/api/v1/tasks")
    assert resp.status_code == 401 and resp.get_json()["error"] == "missing token"
    resp = env.client.get("/api/v1/tasks", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert env.client.get("/healthz").get_json() == {"ok": True, "service": "seeker"}


def test_submit_is_201_with_a_pending_task(env, clock):
    resp = env.post("/tasks", {"image": "busybox:1.36", "command": ["echo", "hi"]})
    assert resp.status_code == 201
    task = resp.get_json()
    assert task["state"] == "pending" and len(task["task_id"]) == 16
    assert task["command"] == ["echo", "hi"] and task["assignments"] == []
    assert task["created_at"] == clock().isoformat()
    assert env.kicks == 1
    assert env.get(f"/tasks/{task['task_id']}").get_json()["state"] == "pending"


def test_submit_reads_sizes(env):
    task_id = env.submit(resources={"memory": "4g", "gpus": 1})
    assert env.get(f"/tasks/{task_id}").get_json()["resources"]["memory"] == 4 * 1024**3


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"image": "Not An Image"}, "image"),
        ({"command": ["true"]}, "image"),
        ({"image": "busybox", "env": {"1X": "y"}}, "env"),
        ({"image": "busybox", "resources": {"memory": "huge"}}, "resources.memory"),
        ({"image": "busybox", "colour": "red"}, "colour"),
    ],
)
def test_bad_submit_is_422_naming_the_field(env, payload, field):
    resp = env.post("/tasks", payload)
    assert resp.status_code == 422
    assert field in [p["field"] for p in resp.get_json()["detail"]]
    assert env.tasks.list() == []


def test_a_memory_size_too_large_to_store_is_422(env):
    resp = env.post("/tasks", {"image": "busybox", "resources": {"memory": "99999999t"}})
    assert resp.status_code == 422


def test_submit_rejects_non_json(env):
    resp = env.client.post("/api/v1/tasks", data="image=busybox", headers=AUTH)
    assert resp.status_code == 400


def test_unknown_task_is_404(env):
    env.register()  # a helper, to report on a task
    for resp in (env.get("/tasks/nope"), env.delete("/tasks/nope"), env.event("nope", "running")):
        assert resp.status_code == 404
        assert resp.get_json()["error"] == "no such task"


def test_list_tasks_and_filter_by_state(env, clock):
    first = env.submit()
    clock.advance(1)
    second = env.submit()
    env.delete(f"/tasks/{first}")
    listed = env.get("/tasks").get_json()
    assert [t["task_id"] for t in listed["tasks"]] == [second, first]
    assert listed["next"] is None
    cancelled = env.get("/tasks?state=cancelled").get_json()["tasks"]
    assert [t["task_id"] for t in cancelled] == [first]
    assert env.get("/tasks?state=bogus").status_code == 400
    assert env.get("/tasks?limit=0").status_code == 400


def test_register_and_list_and_remove_helpers(env, clock):
    resp = env.register(slots=2)
    assert resp.status_code == 200
    assert resp.get_json()["registered_at"] == clock().isoformat()
    assert env.kicks == 1
    helpers = env.get("/helpers").get_json()["helpers"]
    assert [(h["helper_id"], h["running"], h["slots"]) for h in helpers] == [("h1", 0, 2)]
    conflict = env.register(helper_id="h2")
    assert conflict.status_code == 409 and "gpu-1" in conflict.get_json()["error"]
    assert env.register(url="not a url").status_code == 422
    assert env.delete("/helpers/h1").get_json() == {"removed": "h1"}
    assert env.delete("/helpers/h1").status_code == 404


def test_events_accepted_running_finished_succeed_the_task(env):
    env.register()
    task_id = env.submit()
    assert env.dispatcher.dispatch_pending() == 1
    assert env.pushed[0]["task_id"] == task_id
    assert env.get(f"/tasks/{task_id}").get_json()["state"] == "dispatched"
    accepted = env.event(task_id, "accepted")  # the push's reply recorded it already
    assert accepted.status_code == 200 and accepted.get_json()["recorded"] is False
    assert env.event(task_id, "running").get_json() == {
        "task_id": task_id,
        "helper_id": "h1",
        "attempt": 1,
        "state": "running",
        "recorded": True,
    }
    running = env.get(f"/tasks/{task_id}").get_json()
    assert running["state"] == "running"
    assert running["assignments"][0]["state"] == "running"
    kicks = env.kicks
    done = env.event(task_id, "finished", status="succeeded", exit_code=0, output_digest=DIGEST)
    assert done.get_json()["recorded"] is True
    task = env.get(f"/tasks/{task_id}").get_json()
    assert task["state"] == "succeeded"
    assert task["result"]["output_digest"] == DIGEST and task["result"]["helper_id"] == "h1"
    assert [h["state"] for h in task["history"]] == [
        "pending",
        "dispatched",
        "running",
        "succeeded",
    ]
    assert env.kicks == kicks + 1
    assert env.get("/helpers").get_json()["helpers"][0]["running"] == 0


def test_a_repeated_finished_event_changes_nothing(env):
    env.register()
    task_id = env.submit()
    env.dispatcher.dispatch_pending()
    env.event(task_id, "finished", status="succeeded", exit_code=0, output_digest=DIGEST)
    repeated = env.event(task_id, "finished", status="failed", exit_code=1).get_json()
    assert repeated["recorded"] is False
    again = env.get(f"/tasks/{task_id}").get_json()
    assert again["state"] == "succeeded"
    assert again["assignments"][0]["status"] == "succeeded"


def test_a_failure_with_attempts_left_goes_back_to_pending_then_fails(env):
    env.register()
    task_id = env.submit(max_attempts=2)
    env.dispatcher.dispatch_pending()
    env.event(task_id, "finished", status="failed", exit_code=2)
    task = env.get(f"/tasks/{task_id}").get_json()
    assert task["state"] == "pending" and task["error"] is None
    env.dispatcher.dispatch_pending()
    env.event(task_id, "finished", attempt=2, status="failed", exit_code=3)
    task = env.get(f"/tasks/{task_id}").get_json()
    assert task["state"] == "failed"
    assert task["error"] == "container exited with code 3"


def test_an_event_with_a_bad_body_is_422(env):
    env.register()
    task_id = env.submit()
    resp = env.event(task_id, "exploded")
    assert resp.status_code == 422
    assert [p["field"] for p in resp.get_json()["detail"]] == ["state"]


def test_cancel_pending_then_again_is_409(env):
    task_id = env.submit()
    resp = env.delete(f"/tasks/{task_id}")
    assert resp.status_code == 200 and resp.get_json()["state"] == "cancelled"
    again = env.delete(f"/tasks/{task_id}")
    assert again.status_code == 409
    assert again.get_json()["error"] == "task already cancelled"
    assert env.dispatcher.dispatch_pending() == 0


def test_cancel_running_asks_the_helper_to_stop(env):
    stopped = []

    class FakeHelperClient:
        def __init__(self, helper):
            self.helper = helper

        def cancel(self, task_id, attempt):
            stopped.append((self.helper["helper_id"], task_id, attempt))

    env.seeker.helper_client = FakeHelperClient
    env.register()
    task_id = env.submit()
    env.dispatcher.dispatch_pending()
    env.event(task_id, "running")
    assert env.delete(f"/tasks/{task_id}").get_json()["state"] == "cancelled"
    assert stopped == [("h1", task_id, 1)]
    late = env.event(task_id, "finished", status="cancelled", exit_code=137).get_json()
    assert late["recorded"] is True  # the assignment ends; the task stays cancelled
    assert env.get(f"/tasks/{task_id}").get_json()["state"] == "cancelled"


def test_the_end_of_a_cancelled_tasks_assignment_wakes_the_dispatcher(env):
    env.register()
    task_id = env.submit()
    env.dispatcher.dispatch_pending()
    env.event(task_id, "running")
    env.delete(f"/tasks/{task_id}")
    kicks = env.kicks
    env.event(task_id, "finished", status="cancelled", exit_code=137)
    assert env.kicks == kicks + 1  # its slot is free now


def test_task_results_without_a_channel_is_empty(env):
    task_id = env.submit()
    resp = env.get(f"/tasks/{task_id}/results")
    assert resp.get_json() == {
        "task_id": task_id,
        "state": "pending",
        "results": [],
        "next": None,
    }


def test_tasks_come_a_page_at_a_time_with_a_cursor(env, clock):
    ids = []
    for _ in range(5):
        ids.append(env.submit())
        clock.advance()
    first = env.get("/tasks?limit=2").get_json()
    second = env.get(f"/tasks?limit=2&after={first['next']}").get_json()
    third = env.get(f"/tasks?limit=2&after={second['next']}").get_json()
    listed = [t["task_id"] for page in (first, second, third) for t in page["tasks"]]
    assert listed == ids[::-1]
    assert third["next"] is None  # a short page is the last
    resp = env.get("/tasks?after=not-a-cursor!")
    assert resp.status_code == 400 and "cursor" in resp.get_json()["error"]
    resp = env.get("/tasks?after=999999999999999-t1")  # past the year 9999 (found by fuzzing)
    assert resp.status_code == 400 and "cursor" in resp.get_json()["error"]


def test_the_python_client_walks_every_page(env, clock):
    ids = []
    for _ in range(7):
        ids.append(env.submit())
        clock.advance()
    server = BackgroundServer(env.client.application, "127.0.0.1", 0).start()
    try:
        client = SeekerClient(server.url, "t")
        assert [t["task_id"] for t in client.all_tasks(page=3)] == ids[::-1]
        assert [t["task_id"] for t in client.tasks(limit=2)] == ids[:-3:-1]
    finally:
        server.stop()


def digest(c: str) -> str:
    return "sha256:" + c * 64


def disagreeing_quorum(env, helpers: int) -> str:
    """A 2-of-2 quorum task (up to 4 replicas) whose two replicas disagree."""
    for i in range(1, helpers + 1):
        env.register(f"h{i}", f"gpu-{i}", resources={"cpus": 4, "memory_total": 2**33})
    task_id = env.submit(replicas=2, policy={"kind": "quorum", "quorum": 2, "max_replicas": 4})
    assert env.dispatcher.dispatch_pending() == 2
    runs = [(a["helper_id"], a["attempt"]) for a in env.pushed]
    for (helper_id, attempt), c in zip(runs, "ab", strict=True):
        env.event(task_id, "running", attempt=attempt, helper_id=helper_id)
        resp = env.event(
            task_id,
            "finished",
            attempt=attempt,
            helper_id=helper_id,
            status="succeeded",
            exit_code=0,
            output_digest=digest(c),
        )
        assert resp.status_code == 200, resp.get_json()
    return task_id


def test_a_quorum_that_wants_a_helper_nobody_has_left_fails_at_once(env):
    task_id = disagreeing_quorum(env, helpers=2)
    task = env.get(f"/tasks/{task_id}").get_json()
    assert task["state"] == "failed", task
    assert task["error"].startswith("wants one more replica, but every registered helper")
    assert "agreeing: 1 / 1" in task["error"]


def test_a_quorum_with_a_helper_left_waits_for_it(env):
    task_id = disagreeing_quorum(env, helpers=3)
    task = env.get(f"/tasks/{task_id}").get_json()
    assert task["state"] == "pending" and task["error"] is None
    assert env.dispatcher.dispatch_pending() == 1
    first_two = {a["helper_id"] for a in env.pushed[:2]}
    assert env.pushed[-1]["helper_id"] == ({"h1", "h2", "h3"} - first_two).pop()
