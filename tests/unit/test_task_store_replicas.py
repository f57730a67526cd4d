"""The TaskStore's bookkeeping for replicas: how many a task wants, how many
are still open (to place), and its `rev`, which every decision is written
against. One contract, every backend (`mongo_db`)."""

from __future__ import annotations

import pytest

from seeker.models import TaskState
from seeker.placement.outcome import Decision
from seeker.store.tasks import TaskStore

SPEC = {"image": "busybox:1.36", "resources": {"cpus": 1, "memory": 0, "gpus": 0}}
H1 = {"helper_id": "h1", "name": "gpu-1"}
H2 = {"helper_id": "h2", "name": "gpu-2"}
H3 = {"helper_id": "h3", "name": "gpu-3"}
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


@pytest.fixture
def tasks(mongo_db) -> TaskStore:
    store = TaskStore(mongo_db)
    store.ensure_indexes()
    return store


def counts(tasks: TaskStore, task_id="t1") -> tuple:
    doc = tasks.get(task_id)
    return doc["state"], doc["wanted"], doc["open"], doc["rev"]


def states(tasks: TaskStore, task_id="t1") -> list[str]:
    return [h["state"] for h in tasks.get(task_id)["history"]]


def replicated(tasks: TaskStore, clock, replicas=3, placed=(), task_id="t1") -> list[dict]:
    """A task wanting `replicas`, with one placed on each helper of `placed`."""
    tasks.create(task_id, {**SPEC, "replicas": replicas}, clock())
    return [tasks.assign(tasks.get(task_id), h, clock.advance()) for h in placed]


class TestReplicaBookkeeping:
    def test_create_wants_and_opens_every_replica(self, tasks, clock):
        doc = tasks.create("t1", {**SPEC, "replicas": 3}, clock())
        assert (doc["wanted"], doc["open"], doc["rev"], doc["votes"]) == (3, 3, 0, [])
        assert counts(tasks) == ("pending", 3, 3, 0)
        tasks.create("one", SPEC, clock())
        assert counts(tasks, "one") == ("pending", 1, 1, 0)

    def test_assign_takes_one_open_replica_and_bumps_rev(self, tasks, clock):
        a1, a2 = replicated(tasks, clock, 3, [H1, H2])
        assert (a1["_id"], a1["helper_id"], a2["_id"], a2["helper_id"]) == (
            "t1.1",
            "h1",
            "t1.2",
            "h2",
        )
        assert counts(tasks) == ("dispatched", 3, 1, 2)
        assert tasks.get("t1")["attempts"] == 2
        assert states(tasks) == ["pending", "dispatched"]

    def test_assign_with_a_stale_rev_is_refused(self, tasks, clock):
        replicated(tasks, clock, 3)
        stale = tasks.get("t1")
        tasks.apply(stale, Decision(None, 3), clock())  # rev 1, nothing else changed
        assert tasks.assign(stale, H1, clock()) is None
        assert tasks.assignments_of("t1") == []
        assert counts(tasks) == ("pending", 3, 3, 1)
        assert tasks.assign(tasks.get("t1"), H1, clock())["_id"] == "t1.1"

    def test_assign_moves_only_a_pending_task_to_dispatched(self, tasks, clock):
        replicated(tasks, clock, 3, [H1])
        tasks.assignment_running("t1", "h1", 1, clock())
        assert tasks.assign(tasks.get("t1"), H2, clock())["attempt"] == 2
        assert counts(tasks) == ("running", 3, 1, 2)
        assert states(tasks) == ["pending", "dispatched", "running"]

    def test_assign_with_no_replica_open_is_refused(self, tasks, clock):
        replicated(tasks, clock, 2, [H1, H2])
        assert tasks.assign(tasks.get("t1"), H3, clock()) is None
        assert counts(tasks) == ("dispatched", 2, 0, 2)
        assert tasks.get("t1")["attempts"] == 2

    def test_reopen_keeps_a_task_with_a_live_replica_as_it_is(self, tasks, clock):
        replicated(tasks, clock, 2, [H1, H2])
        tasks.assignment_running("t1", "h2", 2, clock())
        tasks.assignment_lost("t1", 1, "helper gone", clock())
        doc = tasks.reopen("t1", 1, clock.advance(), "attempt 1 lost: helper gone")
        assert (doc["state"], doc["open"], doc["rev"]) == ("running", 1, 3)
        assert doc["wait_reason"] == "attempt 1 lost: helper gone"
        assert counts(tasks) == ("running", 2, 1, 3)

    def test_reopen_returns_a_task_with_nothing_live_to_pending(self, tasks, clock):
        replicated(tasks, clock, 2, [H1, H2])
        tasks.push_failed("t1", 1, "refused", clock())  # reopens: h2 still pushing
        assert counts(tasks) == ("dispatched", 2, 1, 3)
        tasks.assignment_lost("t1", 2, "helper gone", clock())
        doc = tasks.reopen("t1", 2, clock(), "attempt 2 lost: helper gone")
        assert (doc["state"], doc["open"]) == ("pending", 2)
        assert states(tasks) == ["pending", "dispatched", "pending"]

    def test_reopen_a_pending_task_opens_one_more(self, tasks, clock):
        replicated(tasks, clock, 2)
        assert tasks.reopen("t1", 1, clock())["open"] == 3
        assert counts(tasks) == ("pending", 2, 3, 1)

    def test_apply_writes_votes_and_wanted_and_opens_the_difference(self, tasks, clock):
        replicated(tasks, clock, 3, [H1, H2, H3])
        votes = {A: ["gpu-1", "gpu-3"], B: ["gpu-2"]}
        doc = tasks.apply(tasks.get("t1"), Decision(None, 5, votes=votes), clock.advance())
        assert doc == tasks.get("t1")  # computed, not read back: it must be what was written
        assert doc["votes"] == [
            {"output_digest": A, "helpers": ["gpu-1", "gpu-3"]},
            {"output_digest": B, "helpers": ["gpu-2"]},
        ]
        assert (doc["state"], doc["wanted"], doc["open"], doc["rev"]) == ("dispatched", 5, 2, 4)
        assert doc["result"] is None and doc["error"] is None and doc["updated_at"] == clock()
        assert states(tasks) == ["pending", "dispatched"]
        doc = tasks.apply(doc, Decision(None, 4), clock())
        assert (doc["wanted"], doc["open"], doc["votes"]) == (4, 1, [])

    def test_apply_writes_the_outcome(self, tasks, clock):
        replicated(tasks, clock, 2, [H1, H2])
        result = {"helper_id": "h1", "attempt": 1, "status": "succeeded", "output_digest": A}
        decision = Decision(TaskState.SUCCEEDED, 2, result, error="replicas disagree: 2 outputs")
        doc = tasks.apply(tasks.get("t1"), decision, clock.advance())
        assert (doc["state"], doc["result"], doc["error"]) == (
            "succeeded",
            result,
            "replicas disagree: 2 outputs",
        )
        assert doc["open"] == 0
        assert states(tasks) == ["pending", "dispatched", "succeeded"]

    def test_apply_with_a_stale_rev_is_refused(self, tasks, clock):
        replicated(tasks, clock, 2, [H1])
        stale = tasks.get("t1")
        tasks.assign(stale, H2, clock())
        assert tasks.apply(stale, Decision(TaskState.FAILED, 2, error="x"), clock()) is None
        assert counts(tasks) == ("dispatched", 2, 0, 2)
        assert tasks.get("t1")["error"] is None

    def test_apply_to_a_finished_task_is_refused(self, tasks, clock):
        replicated(tasks, clock, 2, [H1])
        tasks.cancel("t1", clock())
        done = tasks.get("t1")
        assert tasks.apply(done, Decision(TaskState.SUCCEEDED, 1, {"attempt": 1}), clock()) is None
        doc = tasks.get("t1")
        assert (doc["state"], doc["result"], doc["error"]) == (
            "cancelled",
            None,
            "cancelled by user",
        )

    def test_pending_lists_unfinished_tasks_with_replicas_open(self, tasks, clock):
        replicated(tasks, clock, 1, task_id="new")
        replicated(tasks, clock, 2, [H1], task_id="partly-placed")
        replicated(tasks, clock, 2, [H1, H2], task_id="placed")
        replicated(tasks, clock, 2, [H1], task_id="cancelled")
        tasks.cancel("cancelled", clock())
        replicated(tasks, clock, 2, [H1], task_id="failed")
        tasks.apply(tasks.get("failed"), Decision(TaskState.FAILED, 2, error="x"), clock())
        assert tasks.get("failed")["open"] == 1
        assert [t["_id"] for t in tasks.queue()] == ["new", "partly-placed"]
