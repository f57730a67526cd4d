"""What one task costs the database, kept small: the success of a task of
one replica is decided with one write and no read, its event is appended
with one insert, an accepted push reads nothing back, and a container that
ends at once is reported once. Counted on the collections' calls."""

from __future__ import annotations

import threading
import time

import pytest
from dispatch_fakes import Counting
from test_executor import FakeRuntime, assignment, make, wait_done

from seeker.control.dispatcher import Dispatcher
from seeker.control.operations import Seeker
from seeker.helper_models import AssignmentEvent
from seeker.models import TaskSpec
from seeker.store.events import EventLog
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore


@pytest.fixture
def env(mock_db, clock):
    tasks, helpers = TaskStore(mock_db), HelperStore(mock_db, clock)
    events = EventLog(mock_db, clock)
    seeker = Seeker(tasks, helpers, clock, events=events)
    helpers.register({"helper_id": "h1", "name": "gpu-1", "url": "http://h:1"}, clock())
    dispatcher = Dispatcher(tasks, helpers, push=lambda h, p: {"boot_id": "b"}, clock=clock)
    return seeker, dispatcher, tasks, events


def finished(status: str = "succeeded", exit_code: int = 0) -> AssignmentEvent:
    digest = "sha256:" + "a" * 64
    return AssignmentEvent(
        helper_id="h1",
        attempt=1,
        state="finished",
        status=status,
        exit_code=exit_code,
        output_digest=digest,
    )


def test_a_single_replicas_success_is_one_write_and_its_event_one_insert(env):
    seeker, dispatcher, tasks, events = env
    events.publish("task.succeeded", task_id="warm-up")  # the log knows its last number
    task_id = seeker.submit(TaskSpec(image="busybox", name="one"))["task_id"]
    dispatcher.dispatch_pending()
    tasks.tasks = task_calls = Counting(tasks.tasks)
    events.events = event_calls = Counting(events.events)
    seeker.assignment_event(task_id, finished())
    assert task_calls.calls == ["update_one"]
    assert event_calls.calls == ["insert_one"]
    task = seeker.task(task_id)
    assert task["state"] == "succeeded"
    assert task["result"]["helper_name"] == "gpu-1"
    assert task["result"]["result_id"] == f"{task_id}.1"
    assert task["votes"] == [{"output_digest": "sha256:" + "a" * 64, "helpers": ["gpu-1"]}]
    (event,) = events.since(1)
    assert (event["type"], event["task_id"], event["name"], event["image"]) == (
        "task.succeeded",
        task_id,
        "one",
        "busybox",
    )


def test_a_freed_slot_is_offered_before_the_task_is_decided(mock_db, clock):
    """The next placement (on the dispatch loop's thread) need not wait for
    the decision's writes: room is made as soon as the slot is free."""
    tasks, helpers = TaskStore(mock_db), HelperStore(mock_db, clock)
    seen = []
    seeker = Seeker(tasks, helpers, clock, room=lambda: seen.append(tasks.get(task_id)["state"]))
    helpers.register({"helper_id": "h1", "name": "gpu-1", "url": "http://h:1"}, clock())
    task_id = seeker.submit(TaskSpec(image="busybox"))["task_id"]
    Dispatcher(tasks, helpers, push=lambda h, p: {"boot_id": "b"}, clock=clock).dispatch_pending()
    seeker.assignment_event(task_id, finished())
    assert seen == ["dispatched"]
    assert tasks.get(task_id)["state"] == "succeeded"


def test_a_failure_or_a_replicated_task_is_decided_from_its_assignments(env):
    seeker, dispatcher, tasks, _ = env
    task_id = seeker.submit(TaskSpec(image="busybox"))["task_id"]
    dispatcher.dispatch_pending()
    seeker.assignment_event(task_id, finished("failed", 3))
    task = seeker.task(task_id)
    assert task["state"] == "failed" and task["result"]["exit_code"] == 3


def test_an_accepted_push_reads_nothing_back(env):
    seeker, dispatcher, tasks, _ = env
    seeker.submit(TaskSpec(image="busybox"))
    reads = []
    real_get = tasks.get
    tasks.get = lambda task_id: reads.append(task_id) or real_get(task_id)
    assert dispatcher.dispatch_pending() == 1
    assert reads == []


def test_a_container_that_ends_at_once_is_reported_once():
    reports = []
    ex, box = make(FakeRuntime(), report=lambda task_id, ev: reports.append(ev["state"]))
    ex.running_report_delay = 5.0
    ex.submit(assignment())
    assert box.finished.wait(10)
    wait_done(ex, "t1.1")
    assert reports == []  # "running" never sent: the final event says it all
    assert ex._later.pending() == 0  # nor left to be sent later
    assert [kind for kind, _ in box.entries] == ["result", "event"]


def test_a_container_that_runs_on_is_reported_running_after_the_delay():
    reported = threading.Event()
    runtime = FakeRuntime(block=True)
    ex, box = make(runtime, report=lambda task_id, ev: reported.set())
    ex.running_report_delay = 0.05
    ex.submit(assignment())
    assert runtime.started.wait(10)
    start = time.monotonic()
    assert reported.wait(10)
    assert time.monotonic() - start >= 0.04  # not at the start, after the delay
    runtime.release.set()
    assert box.finished.wait(10)
    wait_done(ex, "t1.1")


def test_a_run_never_reported_running_is_recorded_as_having_run(env, clock):
    seeker, dispatcher, tasks, _ = env
    task_id = seeker.submit(TaskSpec(image="busybox"))["task_id"]
    dispatcher.dispatch_pending()
    started = clock()
    clock.advance(1)
    event = finished().model_copy(update={"started_at": started})
    seeker.assignment_event(task_id, event)
    task = seeker.task(task_id)
    assert [h["state"] for h in task["history"]] == [
        "pending",
        "dispatched",
        "running",
        "succeeded",
    ]
    assert task["history"][2]["at"] == started
    assert task["assignments"][0]["started_at"] == started


def test_a_failed_run_never_reported_running_is_recorded_as_having_run(env, clock):
    seeker, dispatcher, tasks, _ = env
    task_id = seeker.submit(TaskSpec(image="busybox"))["task_id"]
    dispatcher.dispatch_pending()
    event = finished("failed", 3).model_copy(update={"started_at": clock()})
    seeker.assignment_event(task_id, event)
    states = [h["state"] for h in seeker.task(task_id)["history"]]
    assert states == ["pending", "dispatched", "running", "failed"]
