"""Work that builds on work, on the seeker's side: tasks held until the tasks
they run after succeed, cancelled down the chain when one fails, arrays made
in one insert, and inputs described at submit and granted per assignment.
Over mongomock, with the dispatcher's fake push standing in for helpers
(the store's steps over every backend: test_workflow_store.py)."""

from __future__ import annotations

import pytest
from dispatch_fakes import FakePush, add_helper

from seeker.control.dispatcher import Dispatcher
from seeker.control.inputs import assignment_inputs, with_grants
from seeker.control.operations import Seeker
from seeker.helper_models import AssignmentEvent
from seeker.models import ArraySubmission, TaskSpec
from seeker.store.events import EventLog
from serving import grants
from serving.errors import InvalidInput, NotFound
from serving.http import ApiError

DIGEST = "sha256:" + "0" * 64
SHA = "5" * 64
KEY = b"receipt key"


# --- the seeker -----------------------------------------------------------------------------


class FakeChannel:
    def __init__(self):
        self.files = {DIGEST: {"artifact_id": DIGEST, "name": "w.bin", "sha256": SHA, "size": 6}}

    def describe_input(self, artifact_id, grant=None):
        if artifact_id not in self.files:
            raise ApiError(404, "no such input")
        return self.files[artifact_id]


@pytest.fixture
def events(mock_db, clock) -> EventLog:
    return EventLog(mock_db, clock)


@pytest.fixture
def seeker(tasks, helpers, clock, events) -> Seeker:
    return Seeker(tasks, helpers, clock, channel=FakeChannel(), events=events)


@pytest.fixture
def push() -> FakePush:
    return FakePush()


@pytest.fixture
def dispatcher(tasks, helpers, push, clock) -> Dispatcher:
    add_helper(helpers, clock, "gpu-1", slots=8)
    return Dispatcher(tasks, helpers, push=push, clock=clock)


def finish(seeker, push, task_id, status="succeeded"):
    """The helper that took `task_id` reports its run ended with `status`."""
    attempt = max(p["attempt"] for _, p in push.calls if p["task_id"] == task_id)
    event = AssignmentEvent(
        helper_id="id-gpu-1",
        attempt=attempt,
        state="finished",
        status=status,
        exit_code=0 if status == "succeeded" else 1,
        output_digest=DIGEST,
    )
    seeker.assignment_event(task_id, event)


def submit(seeker, **spec) -> dict:
    return seeker.submit(TaskSpec(image="busybox", **spec))


def pushed(push) -> list[str]:
    return [p["task_id"] for _, p in push.calls]


def test_a_task_after_another_runs_once_it_succeeded_with_its_output(seeker, dispatcher, push):
    train = submit(seeker)["task_id"]
    evaluate = submit(seeker, inputs=[{"output_of": train, "path": "/weights"}])
    assert evaluate["after"] == [train] and evaluate["waiting_for"] == [train]
    assert evaluate["wait_reason"] == f"waiting for 1 task(s) to succeed: {train}"
    dispatcher.dispatch_pending()
    assert pushed(push) == [train]  # the held task is not placed
    finish(seeker, push, train)
    task = seeker.task(evaluate["task_id"])
    assert task["waiting_for"] == [] and task["wait_reason"] is None
    dispatcher.dispatch_pending()
    assert pushed(push) == [train, evaluate["task_id"]]
    [inp] = push.calls[-1][1]["inputs"]
    output = {"task_id": train, "helper_id": "id-gpu-1", "attempt": 1, "name": "output.tar"}
    assert inp == {"path": "/weights", "unpack": False, "output": output}


def test_a_failure_cancels_down_the_chain_with_the_reason(seeker, dispatcher, push, events):
    a = submit(seeker)["task_id"]
    b = submit(seeker, after=[a])["task_id"]
    c = submit(seeker, after=[b])["task_id"]
    other = submit(seeker)["task_id"]
    d = submit(seeker, after=[b, other])["task_id"]
    dispatcher.dispatch_pending()
    finish(seeker, push, a, "failed")
    assert seeker.task(b)["state"] == "cancelled"
    assert seeker.task(b)["error"] == f"dependency {a} failed"
    assert seeker.task(c)["error"] == f"dependency {b} cancelled (dependency {a} failed)"
    assert seeker.task(d)["state"] == "cancelled"
    assert seeker.task(other)["state"] == "dispatched"
    cancelled = [e["task_id"] for e in events.since(0) if e["type"] == "task.cancelled"]
    assert sorted(cancelled) == sorted([b, c, d])


def test_cancelling_a_task_cancels_what_runs_after_it(seeker):
    a = submit(seeker)["task_id"]
    b = submit(seeker, after=[a])["task_id"]
    seeker.cancel(a)
    assert seeker.task(b)["error"] == f"dependency {a} cancelled"


def test_a_held_task_cancelled_by_hand_no_longer_says_it_waits(seeker):
    a = submit(seeker)["task_id"]
    b = submit(seeker, after=[a])["task_id"]
    cancelled = seeker.cancel(b)
    assert (cancelled["state"], cancelled["wait_reason"]) == ("cancelled", None)
    assert seeker.task(a)["state"] == "pending"


def test_after_a_task_that_ended_is_decided_at_once(seeker, dispatcher, push):
    done = submit(seeker)["task_id"]
    failed = submit(seeker)["task_id"]
    dispatcher.dispatch_pending()
    finish(seeker, push, done)
    finish(seeker, push, failed, "failed")
    runs = submit(seeker, after=[done])
    assert runs["waiting_for"] == [] and runs["wait_reason"] is None
    assert seeker.tasks.get(runs["task_id"])["open"] == 1
    never = submit(seeker, after=[failed])
    assert seeker.task(never["task_id"])["state"] == "cancelled"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"after": ["nope"]}, "after.0"),
        ({"after": ["arr-nope"]}, "after.0"),
        ({"inputs": [{"output_of": "nope"}]}, "inputs.0.output_of"),
        ({"inputs": [{"artifact_id": "sha256:" + "1" * 64}]}, "inputs.0.artifact_id"),
        ({"inputs": [{"artifact_id": DIGEST}, {"artifact_id": DIGEST}]}, "inputs.1.path"),
        (
            {
                "inputs": [{"artifact_id": DIGEST}],
                "mounts": [{"source": "/d", "target": "/input/w.bin"}],
            },
            "inputs.0.path",
        ),
    ],
)
def test_what_does_not_exist_or_clashes_is_a_422_naming_it(seeker, tasks, spec, field):
    with pytest.raises(InvalidInput) as err:
        submit(seeker, **spec)
    assert [d["field"] for d in err.value.detail] == [field]
    assert tasks.tasks.count_documents({}) == 0  # nothing stored


def test_inputs_are_described_at_submit_and_granted_per_assignment(seeker, dispatcher, push):
    task = submit(seeker, inputs=[{"artifact_id": DIGEST}])
    [inp] = task["inputs"]
    assert inp["path"] == "/input/w.bin" and (inp["sha256"], inp["size"]) == (SHA, 6)
    dispatcher.dispatch_pending()
    payload = push.calls[0][1]
    assert payload["inputs"] == [
        {"path": "/input/w.bin", "unpack": False, "artifact_id": DIGEST, "sha256": SHA}
    ]
    granted = with_grants({**payload, "helper_id": "id-gpu-1"}, KEY)["inputs"][0]["grant"]
    assert grants.holder_of(granted) == grants.Holder(task["task_id"], 1, "id-gpu-1")
    assert grants.covers(KEY, granted, [DIGEST])
    assert not grants.covers(KEY, granted, ["sha256:" + "1" * 64])


def test_an_unpacked_input_defaults_to_its_name_without_tar(seeker):
    seeker.inputs.channel.files[DIGEST]["name"] = "data.tar"
    [inp] = submit(seeker, inputs=[{"artifact_id": DIGEST, "unpack": True}])["inputs"]
    assert inp["path"] == "/input/data"


def test_an_array_is_one_insert_and_each_task_knows_its_index(seeker, dispatcher, push):
    inserts = []
    real = seeker.workflows.store.insert
    seeker.workflows.store.insert = lambda docs: (inserts.append(len(docs)), real(docs))
    made = seeker.submit_array(TaskSpec(image="busybox"), 1000)
    assert inserts == [1000] and made["size"] == 1000
    assert [t["array_index"] for t in made["tasks"]] == list(range(1000))
    array_id = made["array_id"]
    assert array_id.startswith("arr-")
    assert seeker.workflows.array(array_id)["summary"] == "1000 pending"
    dispatcher.dispatch_pending()  # 8 slots
    payloads = [p for _, p in push.calls]
    assert {(p["array_id"], p["array_index"]) for p in payloads} == {
        (array_id, i) for i in range(8)
    }
    cancelled = seeker.workflows.cancel_array(array_id)
    assert cancelled["cancelled"] == 1000 and cancelled["summary"] == "1000 cancelled"
    assert cancelled["done"] is True


def test_a_range_array_and_an_after_over_an_array(seeker, tasks):
    made = seeker.submit_array(TaskSpec(image="busybox"), "5-7")
    assert [t["array_index"] for t in made["tasks"]] == [5, 6, 7]
    after = submit(seeker, after=[made["array_id"]])
    assert sorted(after["waiting_for"]) == sorted(t["task_id"] for t in made["tasks"])
    found, _ = seeker.list_tasks(None, 50, array_id=made["array_id"])
    assert sorted(t["array_index"] for t in found) == [5, 6, 7]


def test_cancelling_an_array_cancels_down_the_chain_of_what_runs_after_it(seeker, events):
    made = seeker.submit_array(TaskSpec(image="busybox"), 3)
    array = [t["task_id"] for t in made["tasks"]]
    after_one = submit(seeker, after=[array[0]])["task_id"]
    after_all = submit(seeker, after=[made["array_id"]])["task_id"]
    last = submit(seeker, after=[after_one])["task_id"]
    seeker.workflows.cancel_array(made["array_id"])
    assert seeker.task(after_one)["error"] == f"dependency {array[0]} cancelled"
    assert seeker.task(after_all)["state"] == "cancelled"
    assert seeker.task(last)["error"] == (
        f"dependency {after_one} cancelled (dependency {array[0]} cancelled)"
    )
    cancelled = [e["task_id"] for e in events.since(0) if e["type"] == "task.cancelled"]
    assert sorted(cancelled) == sorted([*array, after_one, after_all, last])


@pytest.mark.parametrize("array", [0, "9-3", "1-20000", 10_001])
def test_an_array_out_of_range_is_a_422(seeker, array):
    with pytest.raises(InvalidInput):
        seeker.submit_array(TaskSpec(image="busybox"), array)


def test_an_unknown_array_is_a_404(seeker):
    with pytest.raises(NotFound):
        seeker.workflows.array("arr-000000000000")
    with pytest.raises(NotFound):
        seeker.workflows.cancel_array("arr-000000000000")


def test_the_array_submission_keeps_the_array_out_of_the_spec():
    sub = ArraySubmission.model_validate({"image": "busybox", "array": "0-9"}, strict=True)
    assert "array" not in sub.spec().model_dump()


def test_assignment_inputs_name_the_run_that_decided_the_task_before():
    task = {
        "spec": {"inputs": [{"output_of": "t0", "path": "/w", "name": "output.tar"}]},
        "released_by": [{"task_id": "t0", "helper_id": "h2", "attempt": 3}],
    }
    [inp] = assignment_inputs(task)
    assert inp["output"] == {"task_id": "t0", "helper_id": "h2", "attempt": 3, "name": "output.tar"}


# --- the routes ------------------------------------------------------------------------------


class UploadingChannel(FakeChannel):
    def __init__(self):
        super().__init__()
        self.received = []

    def upload_input(self, name, sha256, body):
        self.received.append((name, sha256, len(body), body.read()))
        doc = {"artifact_id": f"sha256:{sha256}", "name": name, "sha256": sha256, "size": len(body)}
        new = f"sha256:{sha256}" not in self.files
        self.files[doc["artifact_id"]] = doc
        return doc, new


@pytest.fixture
def api(tasks, helpers, clock):
    from seeker.api.app import create_app

    channel = UploadingChannel()
    app = create_app(seeker=Seeker(tasks, helpers, clock, channel=channel), token="t")
    return app.test_client(), channel


AUTH = {"Authorization": "Bearer t"}
OCTET = {**AUTH, "Content-Type": "application/octet-stream"}


def test_an_upload_is_passed_on_to_the_channel_as_it_streams(api):
    client, channel = api
    query = {"name": "w.bin", "sha256": SHA}
    first = client.post("/api/v1/inputs", query_string=query, data=b"abcdef", headers=OCTET)
    assert first.status_code == 201 and first.json["artifact_id"] == f"sha256:{SHA}"
    assert channel.received == [("w.bin", SHA, 6, b"abcdef")]
    again = client.post("/api/v1/inputs", query_string=query, data=b"abcdef", headers=OCTET)
    assert again.status_code == 200
    got = client.get(f"/api/v1/inputs/sha256:{SHA}", headers=AUTH)
    assert got.json["size"] == 6


def test_a_bad_upload_is_refused_before_anything_is_sent(api):
    client, channel = api
    bad = client.post(
        "/api/v1/inputs", query_string={"name": "../x", "sha256": SHA}, data=b"x", headers=OCTET
    )
    assert bad.status_code == 422
    text = client.post(
        "/api/v1/inputs", query_string={"name": "x", "sha256": SHA}, data=b"x", headers=AUTH
    )
    assert text.status_code == 415
    assert channel.received == []


def test_arrays_over_http(api):
    client, _ = api
    made = client.post("/api/v1/arrays", json={"image": "busybox", "array": "0-49"}, headers=AUTH)
    assert made.status_code == 201 and made.json["size"] == 50
    array_id = made.json["array_id"]
    status = client.get(f"/api/v1/arrays/{array_id}", headers=AUTH).json
    assert status["counts"] == {"pending": 50} and status["done"] is False
    listed = client.get(f"/api/v1/tasks?array_id={array_id}&limit=500", headers=AUTH).json
    assert sorted(t["array_index"] for t in listed["tasks"]) == list(range(50))
    assert (
        client.post(
            "/api/v1/arrays", json={"image": "busybox", "array": "2"}, headers=AUTH
        ).status_code
        == 422
    )
    assert client.delete(f"/api/v1/arrays/{array_id}", headers=AUTH).json["cancelled"] == 50
    assert client.get("/api/v1/arrays/arr-nope", headers=AUTH).status_code == 404


def test_a_submit_is_news_at_the_queue_tail_and_a_release_news_anywhere(
    tasks, helpers, clock, events, dispatcher, push
):
    news: list[str] = []
    seeker = Seeker(
        tasks,
        helpers,
        clock,
        channel=FakeChannel(),
        events=events,
        kick=lambda: news.append("kick"),
        joined=lambda task_ids: news.append("joined"),
        room=lambda: news.append("room"),
    )
    train = submit(seeker)["task_id"]
    submit(seeker, after=[train])  # held until train succeeds
    assert news == ["joined", "joined"]
    dispatcher.dispatch_pending()
    finish(seeker, push, train)
    # released: older than what was submitted since, so anywhere in the queue
    assert news[2] == "room" and set(news[3:]) == {"kick"}
