"""The seeker's TaskStore: what it reads of the live assignments (by helper,
for a placement pass, and kept between passes). One contract, every
backend (`mongo_db` is parametrized over mongomock, SecantusDB, MongoDB)."""

from __future__ import annotations

import pytest

from seeker.store import assignment_reads
from seeker.store.assignment_reads import FOR_PLACEMENT
from seeker.store.tasks import TaskStore
from tests.task_store_support import HELPER, OTHER, SPEC, counting_finds, dispatched


@pytest.fixture
def tasks(mongo_db) -> TaskStore:
    store = TaskStore(mongo_db)
    store.ensure_indexes()
    return store


class TestLiveAssignments:
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
