"""Prefetch (`helper start --prefetch N`): the helper accepts N assignments
beyond its slots, each starts the moment a container exits, and the seeker
queues a task there only when no helper has a free slot for it. The executor
with a fake runtime whose containers exit when the test says (threads are
awaited with events, not sleeps); the dispatcher over mongomock stores."""

from __future__ import annotations

import threading

import pytest
from dispatch_fakes import add_helper, add_task, states
from test_executor import HELPER_ID, assignment, make, wait_done
from test_helper_devices import FollowingRuntime, left_container
from test_metrics import scrape, value

from helper.app import create_app as helper_app
from helper.executor import Executor
from helper.runs import RunOutcome
from seeker.helper_models import HelperRegistration
from serving.errors import Busy

# --- the helper's queue ---------------------------------------------------------


class StepRuntime:
    """Each container runs until the test lets it exit (`exit(key)`), then
    its run waits again until the test lets its logs and removal finish
    (`finish(key)`): the gap in which a queued assignment should start."""

    def __init__(self):
        self.started: dict[str, threading.Event] = {}
        self._exit: dict[str, threading.Event] = {}
        self._finish: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def _events(self, key: str) -> tuple[threading.Event, threading.Event, threading.Event]:
        with self._lock:
            for d in (self.started, self._exit, self._finish):
                d.setdefault(key, threading.Event())
            return self.started[key], self._exit[key], self._finish[key]

    def run(self, spec, on_started, on_pulling=None, on_exited=None):
        key = spec.labels["io.seeker.assignment"]
        started, exit_, finish = self._events(key)
        on_started()
        started.set()
        assert exit_.wait(10), f"test never let {key} exit"
        on_exited()
        assert finish.wait(10), f"test never let {key} finish"
        return RunOutcome("succeeded", 0)

    def exit(self, key: str) -> None:
        self._events(key)[1].set()

    def finish(self, key: str) -> None:
        self._events(key)[2].set()

    def wait_started(self, key: str) -> bool:
        return self._events(key)[0].wait(10)

    def has_started(self, key: str) -> bool:
        return self._events(key)[0].is_set()

    def stop(self, name):
        return False

    def image_references(self):
        return []


class Outbox:
    def __init__(self):
        self.entries: list[tuple[str, dict]] = []
        self.events: dict[str, threading.Event] = {}

    def put_all(self, entries):
        self.entries.extend(entries)
        for kind, payload in entries:
            if kind == "event":
                self.events.setdefault(payload["task_id"], threading.Event()).set()

    def ended(self, task_id: str) -> bool:
        return self.events.setdefault(task_id, threading.Event()).wait(10)

    def results(self) -> dict[str, str]:
        return {
            p["result"]["task_id"]: p["result"]["status"] for k, p in self.entries if k == "result"
        }


@pytest.fixture
def runtime() -> StepRuntime:
    return StepRuntime()


def executor(runtime, slots=1, prefetch=1) -> tuple[Executor, Outbox]:
    box = Outbox()
    return Executor(runtime, box, HELPER_ID, "h", slots=slots, prefetch=prefetch), box


def test_a_queued_assignment_starts_when_a_container_exits_before_its_run_is_reported(
    runtime,
):
    ex, box = executor(runtime)
    assert "queued" not in ex.submit(assignment("a"))
    assert runtime.wait_started("a.1")
    assert ex.submit(assignment("b"))["queued"] is True
    assert not runtime.has_started("b.1")
    assert [e.get("queued", False) for e in ex.running()] == [False, True]
    samples = scrape(helper_app(executor=ex, token="t", metrics=ex.metrics).test_client())
    assert value(samples, "seeker_helper_containers_running") == 1
    assert value(samples, "seeker_helper_assignments_queued") == 1
    runtime.exit("a.1")  # a's container is gone; its logs, removal and reports are not done
    assert runtime.wait_started("b.1")
    assert box.results() == {}  # b started before a's result was handed on
    assert [e.get("queued", False) for e in ex.running()] == [False, False]
    runtime.finish("a.1")
    assert box.ended("a")
    runtime.exit("b.1")
    runtime.finish("b.1")
    assert box.ended("b")
    assert box.results() == {"a": "succeeded", "b": "succeeded"}
    assert ex.running() == []


def test_the_queue_is_bounded_by_prefetch_and_runs_in_order(runtime):
    ex, box = executor(runtime, slots=1, prefetch=2)
    for name in "abc":
        ex.submit(assignment(name))
    with pytest.raises(Busy) as full:
        ex.submit(assignment("d"))
    assert "all 1 slots are in use and 2 assignments wait" in str(full.value.detail)
    assert runtime.wait_started("a.1")
    runtime.exit("a.1")
    assert runtime.wait_started("b.1")
    assert not runtime.has_started("c.1")  # one slot: c waits for b
    runtime.finish("a.1")
    assert box.ended("a")
    ex.submit(assignment("d"))  # a's end made room in the queue
    runtime.exit("b.1")
    assert runtime.wait_started("c.1")
    assert not runtime.has_started("d.1")
    for key in ("b.1", "c.1", "d.1"):
        runtime.exit(key)
        runtime.finish(key)
    for name in "bcd":
        assert box.ended(name)


def test_without_prefetch_a_full_helper_is_busy(runtime):
    ex, _ = executor(runtime, slots=1, prefetch=0)
    ex.submit(assignment("a"))
    with pytest.raises(Busy) as full:
        ex.submit(assignment("b"))
    assert str(full.value.detail) == "all 1 slots are in use"
    runtime.exit("a.1")
    runtime.finish("a.1")


def test_a_queued_assignment_cancelled_ends_without_a_container(runtime):
    ex, box = executor(runtime)
    ex.submit(assignment("a"))
    ex.submit(assignment("b"))
    assert ex.cancel("b.1")["cancel_requested"] is True
    assert box.ended("b")
    assert box.results() == {"b": "cancelled"}
    finished = [p["event"] for k, p in box.entries if k == "event"]
    assert finished[0]["status"] == "cancelled" and finished[0]["state"] == "finished"
    runtime.exit("a.1")
    runtime.finish("a.1")
    assert box.ended("a")
    assert not runtime.has_started("b.1")
    assert ex.running() == []


def test_a_pulled_assignment_waits_in_the_queue_once_the_seeker_says_run(runtime):
    ex, _ = executor(runtime)
    assert ex.take(assignment("a"), lambda a: True)
    assert not ex.take(assignment("c"), lambda a: False)  # withdrawn: its place is free
    assert ex.take(assignment("b"), lambda a: True)  # taken: it runs once a slot frees
    assert [e.get("queued", False) for e in ex.running()] == [False, True]
    with pytest.raises(Busy):
        ex.take(assignment("d"), lambda a: True)
    runtime.exit("a.1")
    assert runtime.wait_started("b.1")
    for key in ("a.1", "b.1"):
        runtime.exit(key)
        runtime.finish(key)


def test_a_retried_push_of_a_queued_assignment_queues_nothing_more(runtime):
    ex, _ = executor(runtime)
    ex.submit(assignment("a"))
    ex.submit(assignment("b"))
    assert ex.submit(assignment("b"))["state"] == "accepted"  # the same entry, answered again
    assert len(ex.running()) == 2
    for key in ("a.1", "b.1"):
        runtime.exit(key)
        runtime.finish(key)


def test_a_run_adopted_after_a_restart_holds_its_slot():
    runtime = FollowingRuntime()
    ex, box = make(runtime, slots=1, prefetch=1)
    assert ex.adopt([left_container("old.1", {})]) == ["old.1"]
    assert runtime.followed.acquire(timeout=10)
    assert ex.submit(assignment("new"))["queued"] is True  # the adopted run has the slot
    assert runtime.specs == []
    runtime.end("old.1")
    wait_done(ex, "new.1")
    assert [spec.name for spec in runtime.specs] == [f"seeker-new-1-{HELPER_ID[:8]}"]


# --- the seeker's placement -----------------------------------------------------


def test_a_free_slot_elsewhere_goes_before_a_queue(dispatcher, tasks, helpers, push, clock):
    add_helper(helpers, clock, "prefetcher", slots=1, prefetch=1, memory=64 * 2**30)
    add_helper(helpers, clock, "plain", slots=1)
    add_task(tasks, clock, "a")
    add_task(tasks, clock, "b")
    add_task(tasks, clock, "c")
    add_task(tasks, clock, "d")
    assert dispatcher.dispatch_pending() == 3
    # a and b take the two slots (prefetcher ranks first: more memory), c its queue
    assert push.names == ["prefetcher", "plain", "prefetcher"]
    assert tasks.get("d")["wait_reason"] == "2 helpers: 2 no free slot"
    tasks.assignment_finished("b", "id-plain", 1, {"status": "succeeded"}, clock())
    assert dispatcher.dispatch_pending() == 1
    assert push.names[-1] == "plain"  # the free slot, not the queue (full anyway)


def test_a_free_slot_beats_the_queue_of_a_helper_that_ranks_higher(
    dispatcher, tasks, helpers, push, clock
):
    # "prefetcher" has the image and more memory: it ranks above "plain" even
    # with its slot taken, so only the rule (slots first, then queues) sends
    # the second task to plain
    add_helper(helpers, clock, "plain", slots=1, memory=4 * 2**30)
    add_helper(helpers, clock, "prefetcher", slots=1, prefetch=1, memory=64 * 2**30)
    helpers.helpers.update_one(
        {"_id": "id-prefetcher"},
        {"$set": {"resources.images": ["docker.io/library/busybox:1.36"]}},
    )
    add_task(tasks, clock, "a")
    add_task(tasks, clock, "b")
    assert dispatcher.dispatch_pending() == 2
    assert push.names == ["prefetcher", "plain"]


def test_a_queue_is_used_only_when_no_slot_is_free(dispatcher, tasks, helpers, push, clock):
    add_helper(helpers, clock, "plain", slots=1, memory=64 * 2**30)
    add_helper(helpers, clock, "prefetcher", slots=1, prefetch=2)
    add_task(tasks, clock, "a")
    add_task(tasks, clock, "b")
    assert dispatcher.dispatch_pending() == 2
    assert push.names == ["plain", "prefetcher"]  # b: prefetcher's slot, not a queue
    add_task(tasks, clock, "c")
    add_task(tasks, clock, "d")
    add_task(tasks, clock, "e")
    assert dispatcher.dispatch_pending() == 2
    assert push.names[2:] == ["prefetcher", "prefetcher"]
    assert tasks.get("e")["wait_reason"] == "2 helpers: 2 no free slot"
    assert tasks.get("e")["state"] == "pending"


def test_gpu_tasks_and_gangs_never_wait_in_a_queue(dispatcher, tasks, helpers, push, clock):
    add_helper(helpers, clock, "gpu", slots=1, prefetch=2, gpus=2)
    add_task(tasks, clock, "first", gpus=1)
    assert dispatcher.dispatch_pending() == 1
    add_task(tasks, clock, "second-gpu", gpus=1)
    add_task(tasks, clock, "gang", min_helpers=1)
    assert dispatcher.dispatch_pending() == 0
    assert tasks.get("second-gpu")["wait_reason"] == "1 helper: 1 no free slot"
    add_task(tasks, clock, "cpu")
    assert dispatcher.dispatch_pending() == 1
    assert states(tasks, "cpu") == [("gpu", "accepted")]


def test_replicas_never_share_a_helper_through_its_queue(dispatcher, tasks, helpers, push, clock):
    add_helper(helpers, clock, "one", slots=1, prefetch=3)
    add_task(tasks, clock, "r", replicas=2)
    assert dispatcher.dispatch_pending() == 1
    assert states(tasks, "r") == [("one", "accepted")]
    assert tasks.get("r")["open"] == 1


def test_registration_takes_prefetch_and_defaults_to_none():
    base = {"helper_id": "h1", "name": "h1", "url": "http://h1:7072"}
    assert HelperRegistration(**base).prefetch == 0
    assert HelperRegistration(**base, prefetch=4).prefetch == 4
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        HelperRegistration(**base, prefetch=-1)
