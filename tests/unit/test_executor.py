"""The helper's executor and REST API, with a fake container runtime and a
fake outbox (no Docker). Worker threads are awaited with events, not sleeps."""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta, timezone

import pytest

from helper.app import create_app
from helper.executor import Executor
from helper.models import Assignment
from helper.runs import LABEL, RECEIPT_LABEL, RunOutcome
from serving.errors import Busy, Conflict, NotFound
from tests.auth_support import bearer, receipt_for

HELPER_ID = "abcdef0123456789"
STARTED = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
AUTH = {"Authorization": "Bearer t"}  # the operator's token: status only
SEEKER_CREDENTIAL = f"hc1.{HELPER_ID}.nonce.mac"  # what the seeker issued to this helper
AS_SEEKER = bearer(SEEKER_CREDENTIAL)


class FakeRuntime:
    """Runs nothing: reports the start, waits until released (or stopped),
    then returns `outcome` (or raises `error`)."""

    def __init__(
        self, outcome: RunOutcome | None = None, block=False, error=None, stop_releases=True
    ):
        self.outcome = outcome or RunOutcome(
            "succeeded",
            0,
            b"hello\n",
            b"",
            started_at=STARTED,
            finished_at=STARTED + timedelta(seconds=2),
        )
        self.error = error
        self.stop_releases = stop_releases
        self.release = threading.Event()
        if not block:
            self.release.set()
        self.started = threading.Event()
        self.stop_called = threading.Event()
        self.specs = []
        self.stopped = []

    def run(self, spec, on_started, on_pulling=None, on_exited=None):
        self.specs.append(spec)
        on_started()
        self.started.set()
        assert self.release.wait(10), "test never released the fake container"
        if self.error:
            raise self.error
        if on_exited:
            on_exited()
        return self.outcome

    def stop(self, name):
        self.stopped.append(name)
        if self.stop_releases:
            self.release.set()
        self.stop_called.set()
        return True

    def image_references(self):
        return []


class FakeOutbox:
    def __init__(self):
        self.entries: list[tuple[str, dict]] = []
        self.finished = threading.Event()

    def put_all(self, entries):
        """A finished run: its artifacts, result and event, in one file."""
        self.entries.extend(entries)
        if any(kind == "event" for kind, _ in entries):
            self.finished.set()


def assignment(task_id="t1", attempt=1, helper_id=HELPER_ID, **fields) -> Assignment:
    fields.setdefault("receipt", receipt_for(task_id, helper_id, attempt, "t"))
    return Assignment(
        task_id=task_id, attempt=attempt, helper_id=helper_id, image="busybox:1.36", **fields
    )


def results(box) -> list[dict]:
    """The results handed to the outbox (each entry: the result and its receipt)."""
    return [p["result"] for kind, p in box.entries if kind == "result"]


def wait_done(ex: Executor, key: str) -> None:
    """Wait for the thread of assignment `key` to end its run."""
    assert ex.wait_run(key, 10)


def make(runtime, slots=1, report=None, clock=None, **kw) -> tuple[Executor, FakeOutbox]:
    box = FakeOutbox()
    if report:
        kw["report"] = report
    if clock:
        kw["clock"] = clock
    return Executor(runtime, box, HELPER_ID, "gpu-1", slots=slots, **kw), box


def test_submit_runs_and_hands_result_then_event_to_the_outbox(clock):
    reports = []
    runtime = FakeRuntime()
    ex, box = make(runtime, report=lambda task_id, ev: reports.append((task_id, ev)), clock=clock)
    entry = ex.submit(assignment(command=["echo", "hi"], env={"A": "1"}, timeout=30))
    assert entry["accepted_at"] == clock()
    assert entry["container"] == "seeker-t1-1-abcdef01"
    assert box.finished.wait(10)
    wait_done(ex, "t1.1")
    digest = "sha256:" + hashlib.sha256(b"hello\n").hexdigest()
    assert [kind for kind, _ in box.entries] == ["result", "event"]
    assert box.entries[0][1]["receipt"] == receipt_for("t1", HELPER_ID, 1, "t")
    result = box.entries[0][1]["result"]
    assert (result["task_id"], result["attempt"], result["helper_id"]) == ("t1", 1, HELPER_ID)
    assert (result["status"], result["exit_code"], result["stdout"]) == ("succeeded", 0, "hello\n")
    assert result["output_digest"] == digest
    assert result["started_at"] == STARTED.isoformat()
    assert box.entries[1][1] == {
        "task_id": "t1",
        "event": {
            "helper_id": HELPER_ID,
            "attempt": 1,
            "state": "finished",
            "status": "succeeded",
            "exit_code": 0,
            "output_digest": digest,
            "error": None,
            "started_at": STARTED.isoformat(),  # a run that ends at once was never reported running
        },
    }
    assert reports == [("t1", {"helper_id": HELPER_ID, "attempt": 1, "state": "running"})]
    assert ex.running() == []


def test_the_run_spec_carries_limits_and_labels():
    runtime = FakeRuntime()
    ex, box = make(runtime)
    a = assignment(command=["sh"], env={"A": "1"}, timeout=5, resources={"cpus": 2, "gpus": 1})
    ex.submit(a)
    assert box.finished.wait(10)
    (spec,) = runtime.specs
    assert (spec.image, spec.command, spec.timeout) == ("busybox:1.36", ["sh"], 5)
    assert spec.env["A"] == "1"
    assert (spec.name, spec.cpus, spec.network_mode) == ("seeker-t1-1-abcdef01", 2, "bridge")
    assert spec.labels == {
        LABEL: "t1.1",
        "io.seeker.helper": HELPER_ID,
        RECEIPT_LABEL: a.receipt,  # for a restarted helper to post an adopted run's result
    }


def test_the_container_learns_its_task_attempt_and_helper():
    runtime = FakeRuntime()
    ex, box = make(runtime)
    ex.submit(assignment(attempt=3, env={"A": "1", "SEEKER_TASK_ID": "forged"}))
    assert box.finished.wait(10)
    (spec,) = runtime.specs
    assert spec.env == {
        "A": "1",
        "SEEKER_TASK_ID": "t1",  # the identity wins over the task's own env
        "SEEKER_ATTEMPT": "3",
        "SEEKER_HELPER_ID": HELPER_ID,
        "SEEKER_HELPER_NAME": "gpu-1",
    }


def test_pinned_gpus_reach_the_run_spec_and_the_env():
    runtime = FakeRuntime()
    ex, box = make(runtime, declared_gpus=True)
    ex.submit(assignment(resources={"gpus": 2}, gpu_indices=[1, 3]))
    assert box.finished.wait(10)
    (spec,) = runtime.specs
    assert (spec.gpu_indices, spec.declared_gpus) == ([1, 3], True)
    assert spec.env["SEEKER_GPU_INDICES"] == "1,3"


def test_no_gpus_no_gpu_env():
    runtime = FakeRuntime()
    ex, box = make(runtime)
    ex.submit(assignment())
    assert box.finished.wait(10)
    (spec,) = runtime.specs
    assert (spec.gpu_indices, spec.declared_gpus) == ([], False)
    assert "SEEKER_GPU_INDICES" not in spec.env


def test_entries_carry_the_boot_id_and_running_keys_list_them():
    runtime = FakeRuntime(block=True)
    ex, _ = make(runtime, slots=2, boot_id="boot-7")
    assert ex.running_keys() == []
    entry = ex.submit(assignment("t1"))
    ex.submit(assignment("t2", attempt=2))
    try:
        assert entry["boot_id"] == "boot-7"
        assert sorted(ex.running_keys()) == ["t1.1", "t2.2"]
        assert {r["boot_id"] for r in ex.running()} == {"boot-7"}
    finally:
        runtime.release.set()
        wait_done(ex, "t1.1")
        wait_done(ex, "t2.2")
    assert ex.running_keys() == []


def test_submit_returns_a_snapshot():
    runtime = FakeRuntime(block=True)
    ex, _ = make(runtime)
    entry = ex.submit(assignment())
    assert runtime.started.wait(10)
    try:
        assert entry["state"] == "accepted"
    finally:
        runtime.release.set()
        wait_done(ex, "t1.1")


def test_a_full_helper_is_busy_until_a_slot_frees():
    runtime = FakeRuntime(block=True)
    ex, box = make(runtime, slots=1)
    ex.submit(assignment("t1"))
    assert runtime.started.wait(10)
    assert ex.running()[0]["state"] == "running"
    with pytest.raises(Busy):
        ex.submit(assignment("t2"))
    runtime.release.set()
    wait_done(ex, "t1.1")
    assert ex.submit(assignment("t2"))["task_id"] == "t2"
    wait_done(ex, "t2.1")
    assert [r["task_id"] for r in results(box)] == ["t1", "t2"]


def test_a_retried_push_is_accepted_once():
    runtime = FakeRuntime(block=True)
    ex, _ = make(runtime, slots=1)
    first = ex.submit(assignment())
    again = ex.submit(assignment())  # no Busy: it is the same assignment
    assert again["container"] == first["container"]
    runtime.release.set()
    wait_done(ex, "t1.1")
    assert len(runtime.specs) == 1


def test_an_assignment_for_another_helper_is_a_conflict():
    runtime = FakeRuntime()
    ex, box = make(runtime)
    with pytest.raises(Conflict):
        ex.submit(assignment(helper_id="someone-else"))
    assert ex.running() == [] and runtime.specs == []


def test_a_crashing_runtime_still_produces_a_result(clock):
    ex, box = make(FakeRuntime(error=RuntimeError("engine gone")), clock=clock)
    ex.submit(assignment())
    assert box.finished.wait(10)
    (result,) = results(box)
    assert result["status"] == "error" and "engine gone" in result["error"]
    assert result["output_digest"] == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert result["finished_at"] == clock().isoformat()
    assert box.entries[1][1]["event"]["status"] == "error"


def test_a_failing_progress_report_does_not_stop_the_run():
    def report(task_id, event):
        raise ConnectionError("seeker down")

    ex, box = make(FakeRuntime(), report=report)
    ex.submit(assignment())
    assert box.finished.wait(10)
    assert results(box)[0]["status"] == "succeeded"


def test_cancel_returns_a_snapshot():
    runtime = FakeRuntime(block=True, stop_releases=False)
    ex, _ = make(runtime)
    ex.submit(assignment())
    assert runtime.started.wait(10)
    try:
        answer = ex.cancel("t1.1")
        assert answer["cancel_requested"] is True
        answer["state"] = "changed by the caller"
        (entry,) = ex.running()
        assert (entry["state"], entry["cancel_requested"]) == ("running", True)
        assert runtime.stop_called.wait(10)
    finally:
        runtime.release.set()
        wait_done(ex, "t1.1")


def test_cancel_stops_the_container():
    runtime = FakeRuntime(block=True)
    ex, box = make(runtime)
    ex.submit(assignment())
    assert runtime.started.wait(10)
    entry = ex.cancel("t1.1")
    assert entry["cancel_requested"] is True
    assert runtime.stop_called.wait(10)
    assert runtime.stopped == ["seeker-t1-1-abcdef01"]
    wait_done(ex, "t1.1")
    with pytest.raises(NotFound):
        ex.cancel("t1.1")


# --- the helper's REST API ---------------------------------------------------


@pytest.fixture
def runtime():
    rt = FakeRuntime(block=True)
    yield rt
    rt.release.set()


@pytest.fixture
def client(runtime):
    ex, _ = make(runtime, slots=1)
    app = create_app(
        executor=ex,
        token="t",
        seeker_credentials=lambda: (SEEKER_CREDENTIAL,),
        describe=lambda: {"name": "gpu-1"},
    )
    yield app.test_client()
    keys = ex.running_keys()
    runtime.release.set()
    for key in keys:
        wait_done(ex, key)


def push(client, **fields):
    """Push as the seeker does: with this helper's credential, and a receipt."""
    body = {"task_id": "t1", "attempt": 1, "helper_id": HELPER_ID, "image": "busybox", **fields}
    body.setdefault(
        "receipt", receipt_for(body["task_id"], body["helper_id"], body["attempt"], "t")
    )
    return client.post("/api/v1/assignments", json=body, headers=AS_SEEKER)


def test_app_accepts_an_assignment_with_202(client, runtime):
    resp = push(client)
    assert resp.status_code == 202
    assert resp.get_json()["task_id"] == "t1"
    assert resp.get_json()["container"] == "seeker-t1-1-abcdef01"
    assert runtime.started.wait(10)
    status = client.get("/api/v1/status", headers=AUTH).get_json()
    assert status["name"] == "gpu-1" and status["slots"] == 1
    assert [r["task_id"] for r in status["running"]] == ["t1"]


def test_app_answers_422_for_a_bad_body(client, runtime):
    body = {"task_id": "t1", "attempt": "first"}
    resp = client.post("/api/v1/assignments", json=body, headers=AS_SEEKER)
    assert resp.status_code == 422
    fields = {p["field"] for p in resp.get_json()["detail"]}
    assert fields == {"attempt", "helper_id", "image", "receipt"}
    assert runtime.specs == []


def test_app_answers_429_when_full(client):
    assert push(client).status_code == 202
    resp = push(client, task_id="t2")
    assert resp.status_code == 429
    assert resp.get_json()["error"] == "helper is full"


def test_app_answers_409_for_another_helpers_assignment(client):
    assert push(client, helper_id="other").status_code == 409


def test_app_cancel(client, runtime):
    assert client.delete("/api/v1/assignments/t9.1", headers=AS_SEEKER).status_code == 404
    push(client)
    resp = client.delete("/api/v1/assignments/t1.1", headers=AS_SEEKER)
    assert resp.status_code == 200 and resp.get_json()["cancel_requested"] is True
    assert runtime.stop_called.wait(10)
    assert runtime.stopped == ["seeker-t1-1-abcdef01"]


def test_app_requires_the_token(client, runtime):
    resp = client.post("/api/v1/assignments", json={})
    assert resp.status_code == 401
    assert client.get("/healthz").status_code == 200
    assert runtime.specs == []
