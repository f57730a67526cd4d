"""The seeker's TaskStore: every state change is conditional. One contract,
every backend (`mongo_db` is parametrized over mongomock, SecantusDB, MongoDB)."""

from __future__ import annotations

import pytest

from seeker.models import TaskState
from seeker.placement.outcome import Decision
from seeker.store import assignment_reads
from seeker.store.assignment_reads import FOR_PLACEMENT
from seeker.store.tasks import TaskStore, unexplained_query

SPEC = {"image": "busybox:1.36", "resources": {"cpus": 1, "memory": 0, "gpus": 0}}
HELPER = {"helper_id": "h1", "name": "gpu-1"}
OTHER = {"helper_id": "h2", "name": "gpu-2"}


@pytest.fixture
def tasks(mongo_db) -> TaskStore:
    store = TaskStore(mongo_db)
    store.ensure_indexes()
    return store


def states(tasks: TaskStore, task_id: str) -> list[str]:
    return [h["state"] for h in tasks.get(task_id)["history"]]


def counting_finds(tasks: TaskStore, collection: str = "tasks") -> list:
    """The arguments of each `find` the store makes on its tasks (or its
    `collection`) from now on."""
    store, finds = getattr(tasks, collection), []

    class Finds:
        def __getattr__(self, name):
            return getattr(store, name)

        def find(self, *args, **kwargs):
            finds.append(args)
            return store.find(*args, **kwargs)

    setattr(tasks, collection, Finds())
    return finds


def dispatched(tasks: TaskStore, clock, task_id="t1", helper=HELPER) -> dict:
    """A task created and assigned to `helper`; returns the assignment."""
    tasks.create(task_id, SPEC, clock())
    return tasks.assign(tasks.get(task_id), helper, clock.advance())


def test_the_search_for_the_unexplained_names_its_selective_field_first(clock):
    # SecantusDB plans a query by its first field: the queue's own fields
    # first had it walk every pending task (bench/findings.md 44)
    assert list(unexplained_query(clock(), ["t1"]))[:2] == ["_id", "created_at"]
    assert next(iter(unexplained_query(clock()))) == "created_at"


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

    def test_pending_is_oldest_first_and_only_pending(self, tasks, clock):
        t0 = clock()
        tasks.create("late", SPEC, clock.advance(20))
        tasks.create("early", SPEC, t0)
        tasks.create("middle", SPEC, clock.advance(-10))
        assert [t["_id"] for t in tasks.queue()] == ["early", "middle", "late"]
        tasks.assign(tasks.get("middle"), HELPER, clock())
        assert [t["_id"] for t in tasks.queue()] == ["early", "late"]
        assert [t["_id"] for t in tasks.queue(limit=1)] == ["early"]

    def test_the_queue_reads_its_oldest_in_one_query_and_the_rest_once_they_are_taken(
        self, tasks, clock
    ):
        for n in range(40):
            tasks.create(f"t{n:02d}", SPEC, clock.advance(1))
        every = [f"t{n:02d}" for n in range(40)]
        finds = counting_finds(tasks)
        queue = tasks.queue(first=4)
        assert [next(queue)["_id"] for _ in range(4)] == every[:4]
        assert len(finds) == 1
        queue.close()  # out of room: the other 36 are never asked for
        assert len(finds) == 1
        tasks.assign(tasks.get("t01"), HELPER, clock())  # placed: leaves the queue
        assert [t["_id"] for t in tasks.queue(first=4)] == every[:1] + every[2:]
        assert len(finds) == 3  # the oldest four, then the rest
        assert [t["_id"] for t in tasks.queue(limit=3)] == ["t00", "t02", "t03"]

    def test_a_queue_kept_from_a_pass_before_is_taken_first_and_read_again_past_it(
        self, tasks, clock
    ):
        for n in range(6):
            tasks.create(f"t{n}", SPEC, clock.advance(1))
        queue = tasks.queue(first=3)
        assert [next(queue)["_id"] for _ in range(2)] == ["t0", "t1"]
        kept = queue.unread()  # what a pass that ran out of room did not get to
        assert [t["_id"] for t in kept[0]] == ["t2"] and kept[1] is False
        queue.close()
        tasks.assign(tasks.get("t0"), HELPER, clock())
        finds = counting_finds(tasks)
        queue = tasks.queue(first=3, kept=kept)
        assert next(queue)["_id"] == "t2" and finds == []  # in hand: no query
        # past it, the queue as it is now; t2, taken already, is not given twice
        assert next(queue)["_id"] == "t1" and len(finds) == 1
        assert next(queue)["_id"] == "t3"
        assert queue.unread() == ([], False)  # the head read again is all taken
        assert [t["_id"] for t in queue] == ["t4", "t5"]
        queue.close()
        # kept tasks that were the whole queue: none read past them
        whole = tasks.queue(kept=([tasks.get("t5")], True))
        assert [t["_id"] for t in whole] == ["t5"] and whole.unread() == ([], True)

    def test_the_unexplained_are_the_pending_that_do_not_say_why_they_wait(self, tasks, clock):
        for n in range(5):
            tasks.create(f"t{n}", SPEC, clock.advance(1))
        since = tasks.get("t1")["created_at"]
        tasks.set_wait_reason(["t2"], "1 helper: 1 no free slot", clock())
        tasks.assign(tasks.get("t3"), HELPER, clock())  # placed: not pending
        assert [t["_id"] for t in tasks.unexplained(since)] == ["t1", "t4"]
        assert [t["_id"] for t in tasks.unexplained(since, limit=1)] == ["t1"]
        # among the tasks just submitted only
        assert [t["_id"] for t in tasks.unexplained(since, among=["t4", "t2", "t0"])] == ["t4"]
        assert tasks.unexplained(since, among=[]) == []

    def test_list_newest_first_and_by_state(self, tasks, clock):
        tasks.create("a", SPEC, clock())
        tasks.create("b", SPEC, clock.advance())
        tasks.assign(tasks.get("a"), HELPER, clock())
        assert [t["_id"] for t in tasks.list()] == ["b", "a"]
        assert [t["_id"] for t in tasks.list(state="dispatched")] == ["a"]
        assert [t["_id"] for t in tasks.list(limit=1)] == ["b"]

    def test_list_pages_newest_first_without_gaps_or_repeats(self, tasks, clock):
        for i in range(7):  # t0..t6; t2, t3 and t4 created in the same millisecond
            tasks.create(f"t{i}", SPEC, clock() if i in (3, 4) else clock.advance())
        seen, after = [], None
        while True:
            page = tasks.list(limit=3, after=after)
            seen += [d["_id"] for d in page]
            if len(page) < 3:
                break
            after = (page[-1]["created_at"], page[-1]["_id"])
        assert seen == ["t6", "t5", "t4", "t3", "t2", "t1", "t0"]

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

    def test_live_assignments_counts_per_helper(self, tasks, clock):
        dispatched(tasks, clock, "a", HELPER)
        dispatched(tasks, clock, "b", HELPER)
        dispatched(tasks, clock, "c", OTHER)
        dispatched(tasks, clock, "d", OTHER)
        assert tasks.live_assignments() == {"h1": 2, "h2": 2}
        tasks.assignment_running("b", "h1", 1, clock())
        tasks.assignment_finished("c", "h2", 1, {"status": "succeeded"}, clock())
        tasks.push_failed("d", 1, "refused", clock())
        assert tasks.live_assignments() == {"h1": 2}

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

    def test_live_assignment_docs_by_helper(self, tasks, clock):
        dispatched(tasks, clock, "a", HELPER)
        dispatched(tasks, clock, "b", HELPER)
        dispatched(tasks, clock, "c", OTHER)
        tasks.assignment_running("b", "h1", 1, clock())
        tasks.assignment_finished("b", "h1", 1, {"status": "succeeded"}, clock())
        assert sorted(a["_id"] for a in tasks.live_assignment_docs()) == ["a.1", "c.1"]
        assert [a["_id"] for a in tasks.live_assignment_docs("h1")] == ["a.1"]
        assert tasks.live_assignment_docs("nobody") == []

    def test_a_placement_pass_reads_of_live_assignments_only_what_it_uses(self, tasks, clock):
        tasks.create("a", SPEC, clock())
        tasks.assign(tasks.get("a"), HELPER, clock(), {"cpus": 1}, slot=1)
        dispatched(tasks, clock, "b", OTHER)
        tasks.assignment_running("b", "h2", 1, clock())
        tasks.assignment_finished("b", "h2", 1, {"status": "succeeded"}, clock())
        (live,) = tasks.live_for_placement(clock()).docs()
        (whole,) = tasks.live_assignment_docs()
        assert set(live) == {"_id", "helper_id", "reservation", "slot"}
        assert live == {k: whole[k] for k in live}

    def test_a_store_that_follows_reads_only_what_changed_once_many_are_live(
        self, tasks, clock, monkeypatch
    ):
        """Placement passes in a busy fleet (follow_live): once FOLLOW_FROM
        assignments are live, a pass reads those whose liveness changed since
        the last read (SKEW before it), and all of them every FULL_READ; what
        it keeps is what a whole read gives, through placements, ends,
        losses, revivals and failed pushes."""
        monkeypatch.setattr(assignment_reads, "FOLLOW_FROM", 3)
        tasks.follow_live()
        finds = counting_finds(tasks, "assignments")

        sets = []

        def read() -> list[str]:
            finds.clear()
            sets.append(tasks.live_for_placement(clock()))
            kept = sets[-1].docs()
            whole = tasks.live_assignment_docs(fields=FOR_PLACEMENT)
            assert sorted(kept, key=lambda a: a["_id"]) == sorted(whole, key=lambda a: a["_id"])
            first = [next(iter(f[0])) for f in finds[:1]]  # the read's first field
            # a read of what changed brings the same set up to date
            assert len(sets) == 1 or (sets[-1] is sets[-2]) == (first == ["changed_at"])
            return first

        for n in range(5):
            tasks.create(f"t{n}", SPEC, clock())
            tasks.assign(tasks.get(f"t{n}"), HELPER, clock.advance(), {"cpus": 1}, slot=n)
        assert read() == ["state"]  # the first: whole
        clock.advance(6)  # longer than SKEW: no write since is read again
        assert read() == ["changed_at"] and len(tasks.live_for_placement(clock())) == 5
        tasks.assignment_running("t0", "h1", 1, clock())  # still live: not a change
        tasks.assignment_finished("t0", "h1", 1, {"status": "succeeded"}, clock.advance())
        tasks.assignment_lost("t1", 1, "silent", clock())
        tasks.reopen("t1", 1, clock(), "lost")
        assert tasks.push_failed("t2", 1, "refused", clock()) is not None
        tasks.create("t9", SPEC, clock())
        tasks.assign(tasks.get("t9"), OTHER, clock(), {"cpus": 2}, slot=0)
        assert read() == ["changed_at"]
        assert tasks.revive("t1", 1, "h1", clock.advance())  # live again, in a slot
        assert read() == ["changed_at"]
        clock.advance(10)  # FULL_READ since the last whole read
        assert read() == ["state"]
        clock.advance(-60)  # the clock went back: read whole
        assert read() == ["state"]
        for task_id in ("t1", "t3", "t4"):
            tasks.assignment_finished(task_id, "h1", 1, {"status": "failed"}, clock.advance())
        assert read() == ["changed_at"]  # one live now: fewer than FOLLOW_FROM
        assert read() == ["state"]

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

    def test_set_wait_reason_of_several_tasks_in_one_write(self, tasks, clock):
        for task_id in ("w1", "w2", "w3"):
            tasks.create(task_id, SPEC, clock())
        tasks.assign(tasks.get("w3"), HELPER, clock())  # nothing left to place
        tasks.set_wait_reason(["w1", "w2", "w3"], "1 helper: 1 no free slot", clock())
        reasons = [tasks.get(t)["wait_reason"] for t in ("w1", "w2", "w3")]
        assert reasons == ["1 helper: 1 no free slot", "1 helper: 1 no free slot", None]

    def test_set_wait_reason_only_while_pending(self, tasks, clock):
        tasks.create("t1", SPEC, clock())
        tasks.set_wait_reason(["t1"], "1 helper: 1 not enough GPUs", clock())
        assert tasks.get("t1")["wait_reason"] == "1 helper: 1 not enough GPUs"
        tasks.assign(tasks.get("t1"), HELPER, clock())
        assert tasks.get("t1")["wait_reason"] is None
        tasks.set_wait_reason(["t1"], "too late", clock())
        assert tasks.get("t1")["wait_reason"] is None
