"""The seeker's TaskStore: every state change is conditional. One contract,
every backend (`mongo_db` is parametrized over mongomock, SecantusDB, MongoDB)."""

from __future__ import annotations

import pytest

from seeker.models import TaskState
from seeker.placement.outcome import Decision
from seeker.store.tasks import TaskStore
from tests.task_store_support import HELPER, OTHER, SPEC, dispatched, states


@pytest.fixture
def tasks(mongo_db) -> TaskStore:
    store = TaskStore(mongo_db)
    store.ensure_indexes()
    return store


class TestTaskStore:
    def test_ensure_indexes(self, mongo_db, tasks):
        assert {"by_state", "to_place", "newest"} <= set(mongo_db["tasks"].index_information())
        assert {"by_task", "by_state_helper"} <= set(mongo_db["assignments"].index_information())

    def test_create(self, tasks, clock):
        tasks.create("t1", SPEC, clock())
        doc = tasks.get("t1")
        assert doc["state"] == "pending" and doc["attempts"] == 0
        assert doc["spec"] == SPEC and doc["created_at"] == clock()
        assert doc["result"] is None and doc["wait_reason"] is None
        assert (doc["wanted"], doc["open"], doc["rev"], doc["votes"]) == (1, 1, 0, [])
        assert states(tasks, "t1") == ["pending"]
        assert tasks.get("nope") is None

    def test_assign_moves_pending_to_dispatched(self, tasks, clock):
        a = dispatched(tasks, clock)
        assert a["_id"] == "t1.1" and a["attempt"] == 1
        assert (a["helper_id"], a["helper_name"], a["state"]) == ("h1", "gpu-1", "pushing")
        doc = tasks.get("t1")
        assert doc["state"] == "dispatched" and doc["attempts"] == 1
        assert states(tasks, "t1") == ["pending", "dispatched"]
        assert [x["_id"] for x in tasks.assignments_of("t1")] == ["t1.1"]

    def test_assign_with_a_stale_task_is_refused(self, tasks, clock):
        tasks.create("t1", SPEC, clock())
        stale = tasks.get("t1")
        assert tasks.assign(stale, HELPER, clock()) is not None
        assert tasks.assign(stale, OTHER, clock()) is None
        assert len(tasks.assignments_of("t1")) == 1
        assert tasks.get("t1")["attempts"] == 1

    def test_assign_after_a_retry_with_the_old_doc_is_refused(self, tasks, clock):
        tasks.create("t1", SPEC, clock())
        stale = tasks.get("t1")
        tasks.assign(stale, HELPER, clock())
        tasks.push_failed("t1", 1, "refused", clock())  # pending again, attempts 1
        assert tasks.assign(stale, OTHER, clock()) is None
        assert tasks.assign(tasks.get("t1"), OTHER, clock())["attempt"] == 2

    def test_push_failed_sends_the_task_back_to_pending(self, tasks, clock):
        dispatched(tasks, clock)
        task = tasks.push_failed("t1", 1, "connection refused", clock.advance())
        assert task["state"] == "pending" and task["attempts"] == 1
        (a,) = tasks.assignments_of("t1")
        assert a["state"] == "push_failed" and a["error"] == "connection refused"
        assert a["finished_at"] == clock()
        assert tasks.push_failed("t1", 1, "again", clock()) is None
        assert states(tasks, "t1") == ["pending", "dispatched", "pending"]

    def test_push_failed_after_acceptance_changes_nothing(self, tasks, clock):
        dispatched(tasks, clock)
        tasks.assignment_accepted("t1", "h1", 1, clock())
        assert tasks.push_failed("t1", 1, "late timeout", clock()) is None
        assert tasks.get("t1")["state"] == "dispatched"

    def test_accepted_running_finished(self, tasks, clock):
        dispatched(tasks, clock)
        tasks.assignment_accepted("t1", "h1", 1, clock.advance())
        assert tasks.assignments_of("t1")[0]["state"] == "accepted"
        tasks.assignment_running("t1", "h1", 1, clock.advance())
        (a,) = tasks.assignments_of("t1")
        assert a["state"] == "running" and a["started_at"] == clock()
        assert tasks.get("t1")["state"] == "running"
        outcome = {"status": "succeeded", "exit_code": 0}
        assert tasks.assignment_finished("t1", "h1", 1, outcome, clock.advance()) is True
        (done,) = tasks.assignments_of("t1")
        assert done["state"] == "finished" and done["status"] == "succeeded"
        assert done["finished_at"] == clock()
        assert tasks.assignment_finished("t1", "h1", 1, {"status": "failed"}, clock()) is False
        assert tasks.assignments_of("t1")[0]["status"] == "succeeded"

    def test_fetching_comes_between_accepted_and_pulling_or_running(self, tasks, clock):
        dispatched(tasks, clock)
        tasks.assignment_accepted("t1", "h1", 1, clock.advance())
        assert tasks.assignment_fetching("t1", "h1", 1, clock.advance()) is True
        (a,) = tasks.assignments_of("t1")
        assert (a["state"], a["fetching_at"]) == ("fetching", clock())
        assert tasks.assignment_accepted("t1", "h1", 1, clock()) is False  # never back
        assert tasks.assignment_pulling("t1", "h1", 1, clock.advance()) is True
        assert tasks.assignment_fetching("t1", "h1", 1, clock()) is False
        assert tasks.assignment_running("t1", "h1", 1, clock.advance()) is True
        assert tasks.live_assignments() == {"h1": 1}

    def test_running_without_accepted_still_runs(self, tasks, clock):
        dispatched(tasks, clock)
        tasks.assignment_running("t1", "h1", 1, clock())
        assert tasks.get("t1")["state"] == "running"

    def test_events_from_another_helper_change_nothing(self, tasks, clock):
        dispatched(tasks, clock)
        tasks.assignment_accepted("t1", "h2", 1, clock())
        tasks.assignment_running("t1", "h2", 1, clock())
        assert tasks.assignment_finished("t1", "h2", 1, {"status": "failed"}, clock()) is False
        assert tasks.assignments_of("t1")[0]["state"] == "pushing"
        assert tasks.get("t1")["state"] == "dispatched"

    def test_late_accepted_does_not_move_a_running_assignment_back(self, tasks, clock):
        dispatched(tasks, clock)
        tasks.assignment_running("t1", "h1", 1, clock())
        tasks.assignment_accepted("t1", "h1", 1, clock())
        assert tasks.assignments_of("t1")[0]["state"] == "running"

    def test_apply_from_an_active_state(self, tasks, clock):
        dispatched(tasks, clock)
        tasks.assignment_running("t1", "h1", 1, clock())
        result = {"helper_id": "h1", "attempt": 1, "status": "succeeded"}
        read = tasks.get("t1")
        doc = tasks.apply(read, Decision(TaskState.SUCCEEDED, 1, result), clock.advance())
        assert doc == tasks.get("t1")  # computed, not read back: it must be what was written
        assert doc["state"] == "succeeded" and doc["result"] == result
        assert doc["error"] is None and doc["updated_at"] == clock()
        late = Decision(TaskState.FAILED, 1, error="late")
        assert tasks.apply(tasks.get("t1"), late, clock()) is None
        assert tasks.get("t1")["state"] == "succeeded"
        assert states(tasks, "t1") == ["pending", "dispatched", "running", "succeeded"]

    def test_apply_back_to_pending_keeps_attempts(self, tasks, clock):
        dispatched(tasks, clock)
        doc = tasks.apply(tasks.get("t1"), Decision(TaskState.PENDING, 2), clock())
        assert doc["state"] == "pending" and doc["attempts"] == 1 and doc["result"] is None
        assert tasks.assign(doc, OTHER, clock())["_id"] == "t1.2"

    def test_cancel_pending(self, tasks, clock):
        tasks.create("t1", SPEC, clock())
        doc = tasks.cancel("t1", clock.advance())
        assert doc["state"] == "cancelled" and doc["error"] == "cancelled by user"
        assert tasks.cancel("t1", clock()) is None
        assert list(tasks.queue()) == []

    def test_cancel_running_but_not_finished(self, tasks, clock):
        dispatched(tasks, clock, "run")
        tasks.assignment_running("run", "h1", 1, clock())
        assert tasks.cancel("run", clock())["state"] == "cancelled"
        dispatched(tasks, clock, "done")
        tasks.apply(tasks.get("done"), Decision(TaskState.FAILED, 1, error="exit 1"), clock())
        assert tasks.cancel("done", clock()) is None
        assert tasks.get("done")["state"] == "failed"
        assert tasks.cancel("ghost", clock()) is None

    def test_assign_records_the_reservation(self, tasks, clock):
        tasks.create("t1", SPEC, clock())
        reservation = {"cpus": 1, "memory": 1024, "gpus": 2, "gpu_indices": [0, 3]}
        a = tasks.assign(tasks.get("t1"), HELPER, clock(), reservation)
        assert a["reservation"] == reservation
        assert tasks.assignments_of("t1")[0]["reservation"] == reservation
        tasks.create("t2", SPEC, clock())
        assert tasks.assign(tasks.get("t2"), HELPER, clock())["reservation"] == {}

    def test_assignment_accepted_records_the_boot_id(self, tasks, clock):
        dispatched(tasks, clock, "a")
        dispatched(tasks, clock, "b")
        tasks.assignment_accepted("a", "h1", 1, clock(), "boot-1")
        tasks.assignment_accepted("b", "h1", 1, clock())
        assert tasks.assignments_of("a")[0]["boot_id"] == "boot-1"
        assert "boot_id" not in tasks.assignments_of("b")[0]

    @pytest.mark.parametrize("state", ["pushing", "accepted", "fetching", "running"])
    def test_assignment_lost_from_any_live_state(self, tasks, clock, state):
        dispatched(tasks, clock)
        if state != "pushing":
            tasks.assignment_accepted("t1", "h1", 1, clock())
        if state == "fetching":
            tasks.assignment_fetching("t1", "h1", 1, clock())
        if state == "running":
            tasks.assignment_running("t1", "h1", 1, clock())
        assert tasks.assignment_lost("t1", 1, "helper gone", clock.advance()) is True
        (lost,) = tasks.assignments_of("t1")
        assert (lost["state"], lost["error"], lost["finished_at"]) == (
            "lost",
            "helper gone",
            clock(),
        )
        assert tasks.assignment_lost("t1", 1, "again", clock()) is False
        assert tasks.live_assignments() == {}

    def test_a_finished_assignment_is_not_lost(self, tasks, clock):
        dispatched(tasks, clock)
        tasks.assignment_finished("t1", "h1", 1, {"status": "succeeded"}, clock())
        assert tasks.assignment_lost("t1", 1, "helper gone", clock()) is False
        assert tasks.assignments_of("t1")[0]["state"] == "finished"

    def test_late_events_do_not_revive_a_lost_assignment(self, tasks, clock):
        dispatched(tasks, clock)
        tasks.assignment_lost("t1", 1, "helper gone", clock())
        tasks.assignment_accepted("t1", "h1", 1, clock())
        tasks.assignment_running("t1", "h1", 1, clock())
        assert tasks.assignment_finished("t1", "h1", 1, {"status": "failed"}, clock()) is False
        assert tasks.assignments_of("t1")[0]["state"] == "lost"

    def test_reopen_a_task_whose_run_was_lost(self, tasks, clock):
        dispatched(tasks, clock, "d")
        dispatched(tasks, clock, "r")
        tasks.assignment_running("r", "h1", 1, clock())
        for task_id in ("d", "r"):
            tasks.assignment_lost(task_id, 1, "helper gone", clock())
            doc = tasks.reopen(task_id, 1, clock.advance(), "attempt 1 lost: helper gone")
            assert doc["state"] == "pending" and doc["attempts"] == 1
            assert doc["wait_reason"] == "attempt 1 lost: helper gone"
        assert states(tasks, "r") == ["pending", "dispatched", "running", "pending"]
        assert tasks.assign(tasks.get("r"), OTHER, clock())["_id"] == "r.2"

    def test_reopen_a_finished_or_unknown_task_changes_nothing(self, tasks, clock):
        dispatched(tasks, clock, "c")
        tasks.cancel("c", clock())
        assert tasks.reopen("c", 1, clock(), "lost") is None
        assert tasks.get("c")["state"] == "cancelled" and tasks.get("c")["open"] == 0
        assert tasks.reopen("ghost", 1, clock(), "lost") is None
