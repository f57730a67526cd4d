"""A pulling helper's side: an offer runs only once acknowledged, and once
however often it comes; a full or unwilling helper says so instead of
running; the runs it finished are listed with its poll; the stops the seeker
sends are carried out. With a fake runtime and outbox (no Docker, no HTTP)."""

from __future__ import annotations

import pytest
from test_executor import HELPER_ID, FakeRuntime, assignment, make, wait_done

from helper.agent import HelperAgent
from helper.config import HelperConfig
from serving.errors import Busy, Forbidden
from serving.http import Unreachable


def test_an_acknowledged_offer_runs_once_however_often_it_comes():
    runtime = FakeRuntime(block=True)
    ex, box = make(runtime)
    acks = []

    def ack(a):
        acks.append(a.key)
        return True

    assert ex.take(assignment(), ack) is True
    assert runtime.started.wait(10)
    assert ex.take(assignment(), ack) is False  # handed out again: already running
    assert acks == ["t1.1"]
    runtime.release.set()
    assert box.finished.wait(10)
    wait_done(ex, "t1.1")
    assert len(runtime.specs) == 1
    assert ex.running_keys() == [] and ex.done_keys() == ["t1.1"]


def test_an_offer_the_seeker_withdrew_does_not_run_and_frees_its_slot():
    runtime = FakeRuntime()
    ex, _ = make(runtime, slots=1)
    assert ex.take(assignment(), lambda a: False) is False
    assert runtime.specs == [] and ex.running_keys() == []
    assert ex.take(assignment("t2"), lambda a: True) is True  # the slot is free


def test_an_acknowledgement_that_cannot_be_sent_frees_the_slot_and_runs_nothing():
    runtime = FakeRuntime()
    ex, _ = make(runtime, slots=1)

    def unreachable(a):
        raise Unreachable("seeker down")

    with pytest.raises(Unreachable):
        ex.take(assignment(), unreachable)
    assert runtime.specs == [] and ex.running_keys() == []


def test_a_full_or_unwilling_helper_refuses_before_acknowledging():
    runtime = FakeRuntime(block=True)
    ex, box = make(runtime, slots=1, allow_images=["busybox:*"])
    assert ex.take(assignment(), lambda a: True)
    with pytest.raises(Busy):
        ex.take(assignment("t2"), lambda a: pytest.fail("a full helper acknowledged"))
    with pytest.raises(Forbidden):
        ex.take(
            assignment("t3").model_copy(update={"image": "evil:latest"}),
            lambda a: pytest.fail("a refused image was acknowledged"),
        )
    runtime.release.set()
    assert box.finished.wait(10)
    wait_done(ex, "t1.1")


def test_the_finished_runs_listed_are_the_latest_few():
    ex, box = make(FakeRuntime(), slots=1)
    for n in range(300):
        key = f"t{n}.1"
        ex._deliver(f"t{n}", 1, "busybox:1.36", FakeRuntime().outcome, "r")
        assert ex.done_keys()[-1] == key
    assert len(ex.done_keys()) == 256 and ex.done_keys()[0] == "t44.1"


class Reports:
    """The seeker as a pulling helper's agent sees it: answers each report."""

    def __init__(self, run: bool = True):
        self.run = run
        self.sent: list[tuple[str, dict]] = []

    def report(self, task_id: str, event: dict) -> dict:
        self.sent.append((task_id, event))
        return {"recorded": True, "run": self.run}


@pytest.fixture
def agent(tmp_path):
    runtime = FakeRuntime(block=True)
    cfg = HelperConfig(
        "http://seeker", "http://channel", "t", tmp_path, pull=True, slots=1, name="nat"
    )
    a = HelperAgent(cfg, runtime=runtime)
    a.helper_id = HELPER_ID
    a.executor.helper_id = HELPER_ID
    a.seeker = Reports()
    a.executor.report = a.seeker.report  # progress reports go to the seeker too
    yield a, runtime
    runtime.release.set()


def offer(task_id: str) -> dict:
    return assignment(task_id).model_dump()


def test_a_pulling_helper_registers_without_a_url(agent):
    a, _ = agent
    reg = a.registration()
    assert reg["mode"] == "pull" and reg["url"] is None


def test_the_agent_acknowledges_with_its_boot_id_runs_and_refuses_when_full(agent):
    a, runtime = agent
    a.handle({"assignments": [offer("t1"), offer("t2")], "stop": []})
    assert runtime.started.wait(10)
    sent = [(t, e) for t, e in a.seeker.sent if e["state"] != "running"]
    (ack_task, ack), (refused_task, refusal) = sent
    assert ack_task == "t1"
    assert ack == {"helper_id": HELPER_ID, "attempt": 1, "state": "accepted", "boot_id": a.boot_id}
    assert refused_task == "t2" and refusal["state"] == "push_failed"
    assert "helper is full" in refusal["error"]
    a.handle({"assignments": [], "stop": ["t1.1"]})
    assert runtime.stop_called.wait(10)
    wait_done(a.executor, "t1.1")


class Polls:
    """The seeker as a pulling helper's heartbeat and poll see it: it
    joined a small fleet (heartbeats 15 s apart) that grew to 5,000."""

    def __init__(self):
        self.full, self.light = 0, 0
        self.polled: list[dict] = []

    def register_helper(self, body):
        self.full += 1
        return {"heartbeat": 15.0, "stop": []}

    def heartbeat(self, helper_id, beat):
        self.light += 1
        return {"heartbeat": 100.0, "stop": []}

    def poll_work(self, helper_id, body, timeout):
        self.polled.append({**body, "timeout": timeout})
        return {"assignments": [], "stop": [], "wait": 100.0, "heartbeat": 100.0}


def test_a_pulling_helpers_polls_stand_in_for_its_light_heartbeats(tmp_path, clock):
    cfg = HelperConfig("http://seeker", "http://channel", "t", tmp_path, pull=True, name="nat")
    a = HelperAgent(cfg, runtime=FakeRuntime(), clock=clock)
    a.seeker = a.poller = Polls()
    assert a.beat() and a.seeker.full == 1
    a.poll_once()
    assert a.seeker.polled[-1]["wait"] == 25.0  # until the seeker said otherwise
    a.poll_once()
    assert (a.seeker.polled[-1]["wait"], a.seeker.polled[-1]["timeout"]) == (100.0, 115.0)
    assert a.heartbeat_every() == 100.0  # the poll's answer says so too
    clock.advance(100)
    assert a.beat() and (a.seeker.full, a.seeker.light) == (1, 0)  # the polls went through
    clock.advance(20)  # no poll answered within its wait and its slack: beat
    assert a.beat() and (a.seeker.full, a.seeker.light) == (1, 1)
    a.cfg.poll_wait = 30.0  # a proxy on the way closes idle connections sooner
    a.poll_once()
    assert a.seeker.polled[-1]["wait"] == 30.0
    a.cfg.heartbeat = 1.0  # it was asked to beat every second: its polls do not stand in
    a.poll_once()
    assert a.seeker.polled[-1]["heartbeat"] == 1.0
    assert a.beat() and a.seeker.full == 2  # (60 beats of 1 s are over: a full one)
    assert a.beat() and a.seeker.light == 2
