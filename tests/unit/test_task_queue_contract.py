"""The seeker's TaskStore: the queue of pending tasks, the lists of tasks,
and why tasks wait. One contract, every backend (`mongo_db` is parametrized
over mongomock, SecantusDB, MongoDB)."""

from __future__ import annotations

import pytest

from seeker.store.tasks import TaskStore, unexplained_query
from tests.task_store_support import HELPER, SPEC, counting_finds


@pytest.fixture
def tasks(mongo_db) -> TaskStore:
    store = TaskStore(mongo_db)
    store.ensure_indexes()
    return store


def test_the_search_for_the_unexplained_names_its_selective_field_first(clock):
    # SecantusDB plans a query by its first field: the queue's own fields
    # first had it walk every pending task (bench/findings.md 44)
    assert list(unexplained_query(clock(), ["t1"]))[:2] == ["_id", "created_at"]
    assert next(iter(unexplained_query(clock()))) == "created_at"


class TestTaskQueue:
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
