"""Faults, with real processes: the seeker killed with SIGKILL
mid-dispatch and restarted, and what a seeker killed between a failed
attempt's write and its give-back leaves behind (the database restarted
under load is in test_faults.py)."""

from __future__ import annotations

import json
import secrets
import signal
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymongo
import pytest
import requests

from channel.client import ChannelClient
from seeker.models import AssignmentState, TaskSpec, TaskState
from seeker.store.task_document import new_task
from tests.integration.conftest import ECHO_ID, IMAGE
from tests.integration.harness import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]


class PushGate:
    """The way from the seeker to its helpers, to cut a push at a chosen
    point: an HTTP proxy in front of each helper (its --advertise-url) that
    passes everything through but holds the `hold`-th push of an assignment
    (counted over every helper). `where="before"` holds it before the
    helper gets it; `where="after"` gives it to the helper and holds back
    the helper's answer. A held push ends, unanswered, on `release()`."""

    PUSH = ("POST", "/api/v1/assignments")

    def __init__(self, hold: int, where: str):
        assert where in ("before", "after")
        self.hold, self.where = hold, where
        self.pushes = 0
        self.held_push: dict | None = None
        self._lock = threading.Lock()
        self.held = threading.Event()
        self._released = threading.Event()
        self._servers: list[ThreadingHTTPServer] = []

    def _is_held(self, method: str, path: str, body: bytes | None) -> bool:
        if (method, path) != self.PUSH:
            return False
        with self._lock:
            self.pushes += 1
            if self.pushes != self.hold:
                return False
        self.held_push = json.loads(body)
        return True

    def _wait_here(self) -> None:
        self.held.set()
        self._released.wait(60)

    def release(self) -> None:
        self._released.set()

    def front(self) -> GateFront:
        """A proxy for one helper; `open(helper_url)` once the helper listens."""
        front = GateFront(self)
        self._servers.append(front.server)
        return front

    def close(self) -> None:
        self.release()
        for server in self._servers:
            server.shutdown()
            server.server_close()


class GateFront:
    def __init__(self, gate: PushGate):
        self.target: str | None = None
        self.ready = threading.Event()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def _pass(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                held = gate._is_held(self.command, self.path, body)
                if held and gate.where == "before":
                    gate._wait_here()
                    self.close_connection = True  # the helper never hears of it
                    return
                front.ready.wait(30)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("authorization", "content-type")
                }
                try:
                    resp = requests.request(
                        self.command,
                        front.target + self.path,
                        data=body,
                        headers=headers,
                        timeout=30,
                    )
                except requests.RequestException:
                    self.send_error(502)
                    return
                if held:  # where == "after": the helper took it, the seeker never hears
                    gate._wait_here()
                    self.close_connection = True
                    return
                self.send_response(resp.status_code)
                self.send_header("Content-Type", resp.headers.get("Content-Type", "text/plain"))
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_DELETE = _pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def open(self, helper_url: str) -> None:
        self.target = helper_url
        self.ready.set()


@pytest.fixture
def push_gate():
    gates: list[PushGate] = []

    def make(hold: int, where: str) -> PushGate:
        gates.append(PushGate(hold, where))
        return gates[-1]

    yield make
    for gate in gates:
        gate.close()


def wait_all_ended(client, ids: list[str], timeout: float) -> list[dict]:
    def unfinished() -> list[dict]:
        return [t for t in map(client.get, ids) if t["state"] not in TaskState.final()]

    try:
        wait_until(lambda: not unfinished(), timeout, "every task to end", interval=0.5)
    except AssertionError:
        stuck = {
            t["task_id"]: (t["state"], [(a["helper_name"], a["state"]) for a in t["assignments"]])
            for t in unfinished()
        }
        raise AssertionError(f"still unfinished after {timeout}s: {stuck}") from None
    return [client.get(i) for i in ids]


@pytest.mark.parametrize(
    "where",
    ["before", "after"],
    ids=["push-never-reached-the-helper", "helper-took-it-unrecorded"],
)
def test_a_seeker_killed_mid_dispatch_ends_every_task_with_exactly_its_replicas(
    push_gate, fleet, cluster, where
):  # push_gate first: its proxies outlive the fleet's teardown (no purge races it)
    add, client = fleet
    gate = push_gate(hold=7, where=where)  # the 7th of 20 pushes
    for n in range(3):
        front = gate.front()
        add(f"k-{n}", "cpus=4,memory=4g", "--slots", "7", "--advertise-url", front.url)
        front.open(cluster.helper_urls[f"k-{n}"])
    ids = [
        client.submit(IMAGE, ["sh", "-c", "sleep 1; echo ok"], replicas=2, policy={"kind": "all"})[
            "task_id"
        ]
        for _ in range(10)
    ]
    wait_until(gate.held.is_set, 30, "the seeker to be in the middle of a push")
    cluster.seeker.stop(signal.SIGKILL)  # 6 pushes done, 1 cut, 13 to go
    gate.release()
    cluster.seeker.start().wait_healthy(cluster.seeker_url)

    # pushes no longer hold up the placement pass, so the kill may also cut a
    # placement between its two writes: given back 15-25 s later
    tasks = wait_all_ended(client, ids, timeout=60)
    channel = ChannelClient(cluster.channel_url, cluster.token)
    for task in tasks:
        assert task["state"] == "succeeded", task
        results = wait_until(
            lambda t=task["task_id"]: len(r := channel.all_results(t)) >= 2 and r,
            30,
            f"both results of {task['task_id']}",
        )
        assert [r["stdout"] for r in results] == ["ok\n", "ok\n"]
        assert len({r["helper_id"] for r in results}) == 2
        finished = {
            (a["helper_id"], a["attempt"]) for a in task["assignments"] if a["state"] == "finished"
        }
        assert {(r["helper_id"], r["attempt"]) for r in results} == finished
        assert not [a for a in task["assignments"] if a["state"] in AssignmentState.live()]
    for state in ("pending", "dispatched", "running"):
        assert client.tasks(state=state) == []
    if where == "after":  # the helper's run of the cut push counts: nothing ran twice
        [task] = [t for t in tasks if t["task_id"] == gate.held_push["task_id"]]
        [cut] = [a for a in task["assignments"] if a["attempt"] == gate.held_push["attempt"]]
        ran = [a for a in task["assignments"] if a["state"] == "finished"]
        assert cut["state"] == "finished" and len(ran) == 2, task["assignments"]
        # besides: only an attempt counted by a placement the kill cut
        # between its two writes, given back unrun (a placeholder, no helper)
        others = [a for a in task["assignments"] if a not in ran]
        assert all(a["state"] == "push_failed" and a["helper_id"] is None for a in others), others


@pytest.fixture
def seeker_db(cluster):
    """The seeker's own database, as its processes see it."""
    mongo = pymongo.MongoClient(cluster.seeker_db_url)
    yield mongo.get_default_database()
    mongo.close()


def test_a_replica_a_killed_seeker_left_owed_is_given_back_and_runs(fleet, cluster, seeker_db):
    """What a seeker SIGKILLed between writing a failed attempt (its slot was
    taken by another seeker's placement) and giving the replica back leaves
    in the database, written here as it was found once in
    test_several_seekers, where the task then stayed `dispatched` for good:
    a task counting one attempt, nothing live, and that attempt's assignment
    owed. The lease holder gives the replica back once it has been owed for
    15 s (reconcile-placements, every 10 s), and the task runs once."""
    add, client = fleet
    add("owed-1")
    db = seeker_db
    now = datetime.now(timezone.utc)
    task_id = secrets.token_hex(8)
    spec = TaskSpec(image=IMAGE, command=ECHO_ID).model_dump(mode="json")
    task = new_task(task_id, spec, now)
    dispatched = {"state": TaskState.DISPATCHED.value, "at": now}
    task.update(state=dispatched["state"], attempts=1, open=0, rev=1)
    task["history"].append(dispatched)
    db.tasks.insert_one(task)
    db.assignments.insert_one(
        {
            "_id": f"{task_id}.1",
            "task_id": task_id,
            "attempt": 1,
            "helper_id": None,
            "helper_name": None,
            "state": AssignmentState.PUSH_FAILED.value,
            "assigned_at": now,
            "finished_at": now,
            "error": "slot 0 of owed-1 was taken by another placement",
            "reservation": {},
            "owed": now,
        }
    )
    ended = wait_until(
        lambda: (t := client.get(task_id))["state"] in TaskState.final() and t,
        40,
        "the task to end",
    )
    assert ended["state"] == "succeeded", ended
    assert [a["state"] for a in ended["assignments"]] == ["push_failed", "finished"]
    channel = ChannelClient(cluster.channel_url, cluster.token)
    results = wait_until(lambda: channel.all_results(task_id), 30, "the task's result")
    assert [r["stdout"] for r in results] == [f"{task_id}\n"], results
    assert db.tasks.find_one({"_id": task_id})["returned"] == [1]
    assert "owed" not in db.assignments.find_one({"_id": f"{task_id}.1"})
