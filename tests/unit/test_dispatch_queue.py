"""The dispatcher's reading of the queue: a pass stops reading where room
runs out, tells the tasks new to the queue why they wait (one write per
reason), and a pass on room alone does not look for new ones; the loop
passes on which kind of pass it runs."""

from __future__ import annotations

import pytest
from dispatch_fakes import FakePush, add_helper, add_task

from seeker.control.dispatch_loop import JOINED_MAX, DispatchLoop
from seeker.control.dispatcher import Dispatcher
from seeker.store.tasks import TO_PLACE


@pytest.fixture
def push() -> FakePush:
    return FakePush()


def test_a_full_fleet_skips_tasks_that_already_say_why_they_wait(tasks, helpers, push, clock):
    dispatcher = Dispatcher(tasks, helpers, push=push, clock=clock)
    add_helper(helpers, clock, "only", slots=1)
    for n in range(3):
        add_task(tasks, clock, task_id=f"t{n}")
    assert dispatcher.dispatch_pending() == 1  # t0 runs; t1 and t2 learn why they wait
    reasons = {t: tasks.get(t)["wait_reason"] for t in ("t1", "t2")}
    assert reasons == {"t1": "1 helper: 1 no free slot", "t2": "1 helper: 1 no free slot"}
    looked_at = []
    original = tasks.assignments_of
    tasks.assignments_of = lambda task_id: looked_at.append(task_id) or original(task_id)
    assert dispatcher.dispatch_pending() == 0
    assert looked_at == []  # nothing read or written for the queued tasks
    add_task(tasks, clock, task_id="t3")
    dispatcher.dispatch_pending()
    # t3 is ranked (it learns why it waits); never assigned, it has no
    # assignments to read
    assert looked_at == [] and tasks.get("t3")["wait_reason"] == "1 helper: 1 no free slot"


def test_the_tasks_a_pass_tells_one_reason_are_told_in_one_write(tasks, helpers, push, clock):
    dispatcher = Dispatcher(tasks, helpers, push=push, clock=clock)
    add_helper(helpers, clock, "only", slots=1)
    for n in range(4):
        add_task(tasks, clock, task_id=f"t{n}")
    writes = []
    original = tasks.set_wait_reason

    def counted(ids, reason, now):
        writes.append((list(ids), reason))
        original(ids, reason, now)

    tasks.set_wait_reason = counted
    assert dispatcher.dispatch_pending() == 1  # t0 runs
    assert writes == [(["t1", "t2", "t3"], "1 helper: 1 no free slot")]
    assert {tasks.get(f"t{n}")["wait_reason"] for n in (1, 2, 3)} == {"1 helper: 1 no free slot"}


class Taken:
    """The tasks a pass takes from the store's queue cursor, by id."""

    def __init__(self, tasks):
        self.ids: list[str] = []
        self.closed = 0
        queue = tasks.queue

        def counted(*args, **kwargs):
            cursor = queue(*args, **kwargs)
            taken = self

            class Counted:
                def __iter__(self):
                    return self

                def __next__(self):
                    task = next(cursor)
                    taken.ids.append(task["_id"])
                    return task

                def close(self):
                    taken.closed += 1
                    cursor.close()

                def unread(self):
                    return cursor.unread()

                @property
                def taken(self):
                    return cursor.taken

            return Counted()

        tasks.queue = counted


def test_a_pass_reads_the_queue_only_while_a_helper_has_room(tasks, helpers, push, clock):
    dispatcher = Dispatcher(tasks, helpers, push=push, clock=clock)
    add_helper(helpers, clock, "only", slots=2)
    for n in range(40):
        add_task(tasks, clock, task_id=f"t{n:02d}")
    taken = Taken(tasks)
    assert dispatcher.dispatch_pending() == 2
    # the third finds no room: the rest of the queue is not read, but each
    # task new to it is told why it waits
    assert taken.ids == ["t00", "t01", "t02"] and taken.closed == 1
    reasons = {tasks.get(f"t{n:02d}")["wait_reason"] for n in range(2, 40)}
    assert reasons == {"1 helper: 1 no free slot"}
    assert dispatcher.waiting  # a slot freed is worth a pass
    taken.ids.clear()
    assert dispatcher.dispatch_pending() == 0
    assert taken.ids == ["t02"]
    add_task(tasks, clock, task_id="t40")
    dispatcher.dispatch_pending()
    # the same fleet with no room: the queue is not read again (no_room.py),
    # but the task new to it is told why it waits
    assert taken.ids == ["t02"]
    assert tasks.get("t40")["wait_reason"] == "1 helper: 1 no free slot"
    tasks.assignment_finished("t00", "id-only", 1, {"status": "succeeded"}, clock())
    taken.ids.clear()
    assert dispatcher.dispatch_pending() == 1  # the slot freed goes to the oldest
    assert taken.ids == ["t02", "t03"]
    assert [a["helper_id"] for a in tasks.assignments_of("t02")] == ["id-only"]


def test_a_pass_after_room_made_alone_does_not_look_for_tasks_new_to_the_queue(
    tasks, helpers, push, clock
):
    dispatcher = Dispatcher(tasks, helpers, push=push, clock=clock)
    add_helper(helpers, clock, "only", slots=1)
    add_task(tasks, clock, task_id="runs")
    add_task(tasks, clock, task_id="told")
    assert dispatcher.dispatch_pending() == 1
    add_task(tasks, clock, task_id="new")
    unexplained = tasks.unexplained
    looked: list[str] = []

    def looking(since, among):
        looked.append("looked")
        return unexplained(since, among=among)

    tasks.unexplained = looking
    assert dispatcher.dispatch_pending(news=False) == 0  # a helper answered a probe, say
    assert looked == [] and tasks.get("new")["wait_reason"] is None
    assert dispatcher.dispatch_pending(news=True) == 0  # its submit's kick, or the sweep's
    assert looked == ["looked"] and tasks.get("new")["wait_reason"] == "1 helper: 1 no free slot"


def test_the_loop_passes_on_whether_it_was_kicked_told_of_submits_or_only_of_room():
    passes: list[tuple[bool, list[str] | None]] = []

    class Recorder:
        def dispatch_pending(self, news: bool = True, joined: list[str] | None = None) -> int:
            passes.append((news, joined))
            return 0

    loop = DispatchLoop(Recorder())  # not started: each pass is run here
    loop._pass()  # the first, at start: whatever a previous run left
    loop.room()
    loop._pass()
    loop.kick()
    loop.room()
    loop._pass()
    loop._pass()
    loop.joined(["a"])  # submits
    loop.joined(["b", "c"])
    loop._pass()
    loop.joined(["d"])
    loop.kick()  # and a task given back: the news may be anywhere
    loop._pass()
    loop.joined(["e"])
    loop.joined(None)  # a submit whose task is not known
    loop._pass()
    loop.joined([f"t{n}" for n in range(JOINED_MAX + 1)])  # too many to carry
    loop._pass()
    assert passes == [
        (True, None),
        (False, None),
        (True, None),
        (False, None),
        (True, ["a", "b", "c"]),
        (True, None),
        (True, None),
        (True, None),
    ]


def test_a_pass_that_failed_leaves_its_news_to_the_pass_that_tries_again():
    passes: list[tuple[bool, list[str] | None]] = []

    class Failing:
        def dispatch_pending(self, news: bool = True, joined: list[str] | None = None) -> int:
            passes.append((news, joined))
            if len(passes) in (1, 4):
                loop.joined(["b"])  # submitted meanwhile
                raise RuntimeError("database hiccup")
            return 0

    loop = DispatchLoop(Failing())
    loop.kick()
    with pytest.raises(RuntimeError):
        loop._pass()
    loop._pass()
    loop._pass()
    loop.joined(["a"])
    with pytest.raises(RuntimeError):
        loop._pass()
    loop._pass()
    assert passes == [(True, None), (True, None), (False, None), (True, ["a"]), (True, ["a", "b"])]


class QueueReads:
    """The queries of the queue (TO_PLACE, oldest first) the task store makes."""

    def __init__(self, tasks):
        self.count = 0
        store = tasks.tasks
        reads = self

        class Finds:
            def __getattr__(self, name):
                return getattr(store, name)

            def find(self, query=None, *args, **kwargs):
                reads.count += query == TO_PLACE
                return store.find(query, *args, **kwargs)

        tasks.tasks = Finds()


def finish(tasks, clock, task_id, helper="id-only", attempt=1):
    tasks.assignment_finished(task_id, helper, attempt, {"status": "succeeded"}, clock())


def behind_one_slot(tasks, helpers, push, clock, task_ids) -> Dispatcher:
    """A helper of one slot, `task_ids` submitted in that order, and a
    first pass, which placed the first of them."""
    dispatcher = Dispatcher(tasks, helpers, push=push, clock=clock)
    add_helper(helpers, clock, "only", slots=1)
    for task_id in task_ids:
        add_task(tasks, clock, task_id=task_id)
    assert dispatcher.dispatch_pending() == 1
    return dispatcher


def test_a_pass_on_room_alone_starts_from_what_the_last_pass_left_with_no_query(
    tasks, helpers, push, clock
):
    dispatcher = Dispatcher(tasks, helpers, push=push, clock=clock)
    add_helper(helpers, clock, "only", slots=1)
    for n in range(20):
        add_task(tasks, clock, task_id=f"t{n:02d}")
    reads = QueueReads(tasks)
    assert dispatcher.dispatch_pending() == 1  # news: the queue is read
    assert reads.count == 1
    for n in range(19):  # each run's end makes room for the next, oldest first
        finish(tasks, clock, f"t{n:02d}")
        assert dispatcher.dispatch_pending(news=False) == 1
        assert [a["helper_id"] for a in tasks.assignments_of(f"t{n + 1:02d}")] == ["id-only"]
    # the first read's 16 were kept; past them, the queue was read once more
    assert reads.count == 2
    assert dispatcher.dispatch_pending() == 0 and reads.count == 3  # news reads it again


def test_a_kept_task_changed_elsewhere_meanwhile_is_passed_over_not_placed_twice(
    tasks, helpers, push, clock
):
    dispatcher = behind_one_slot(tasks, helpers, push, clock, ["a", "b", "c"])
    # another seeker places b, and a's run ends
    tasks.assign(tasks.get("b"), {"helper_id": "id-elsewhere", "name": "elsewhere"}, clock())
    finish(tasks, clock, "a")
    assert dispatcher.dispatch_pending(news=False) == 1
    assert [a["helper_id"] for a in tasks.assignments_of("b")] == ["id-elsewhere"]
    assert [a["helper_id"] for a in tasks.assignments_of("c")] == ["id-only"]


def test_a_kept_task_with_replicas_left_to_place_is_kept_as_its_placement_left_it(
    tasks, helpers, push, clock
):
    dispatcher = Dispatcher(tasks, helpers, push=push, clock=clock)
    add_helper(helpers, clock, "one", slots=2)
    add_task(tasks, clock, task_id="r", replicas=2)  # on two distinct helpers
    assert dispatcher.dispatch_pending() == 1
    assert tasks.get("r")["wait_reason"].startswith("1 of 2 replicas unplaced")
    reads, writes = QueueReads(tasks), []
    tasks.set_wait_reason = lambda ids, reason, now: writes.append(ids)
    add_helper(helpers, clock, "two", slots=1)  # it joins: room made
    assert dispatcher.dispatch_pending(news=False) == 1
    assert sorted(a["helper_id"] for a in tasks.assignments_of("r")) == ["id-one", "id-two"]
    assert reads.count == 0 and writes == []


def test_a_kept_task_changed_meanwhile_with_replicas_still_open_is_read_again_and_placed(
    tasks, helpers, push, clock
):
    dispatcher = Dispatcher(tasks, helpers, push=push, clock=clock)
    add_helper(helpers, clock, "one", slots=2)
    add_task(tasks, clock, task_id="r", replicas=2)
    assert dispatcher.dispatch_pending() == 1
    tasks.started("r", clock())  # its first replica runs: the task as kept is stale
    reads = QueueReads(tasks)
    add_helper(helpers, clock, "two", slots=1)
    assert dispatcher.dispatch_pending(news=False) == 1
    assert sorted(a["helper_id"] for a in tasks.assignments_of("r")) == ["id-one", "id-two"]
    assert reads.count == 0  # the task alone was read again


def test_a_pass_on_room_alone_does_not_tell_the_tasks_it_left_their_reason_again(
    tasks, helpers, push, clock
):
    dispatcher = behind_one_slot(tasks, helpers, push, clock, [f"t{n}" for n in range(4)])
    assert {tasks.get(f"t{n}")["wait_reason"] for n in (1, 2, 3)} == {"1 helper: 1 no free slot"}
    writes: list[list[str]] = []
    set_wait_reason = tasks.set_wait_reason
    tasks.set_wait_reason = lambda ids, *args: writes.append(ids) or set_wait_reason(ids, *args)
    finish(tasks, clock, "t0")
    assert dispatcher.dispatch_pending(news=False) == 1
    assert writes == []  # t2 and t3 say so already, as the pass before left them


def test_a_pass_after_submits_alone_starts_from_what_the_last_pass_left_and_reads_past_it(
    tasks, helpers, push, clock
):
    dispatcher = behind_one_slot(tasks, helpers, push, clock, ["t0", "t1", "t2"])
    reads = QueueReads(tasks)
    add_task(tasks, clock, task_id="new")
    unexplained, looked = tasks.unexplained, []

    def looking(since, among):
        looked.append(among)
        return unexplained(since, among=among)

    tasks.unexplained = looking
    assert dispatcher.dispatch_pending(news=True, joined=["new"]) == 0  # no room: no query
    assert reads.count == 0 and tasks.get("new")["wait_reason"] == "1 helper: 1 no free slot"
    assert looked == [["new"]]  # told, looked for by its id
    for n, task_id in enumerate(["t1", "t2", "new"]):  # in the order they came
        finish(tasks, clock, "t0" if n == 0 else ["t1", "t2"][n - 1])
        assert dispatcher.dispatch_pending(news=False) == 1
        assert [a["helper_id"] for a in tasks.assignments_of(task_id)] == ["id-only"]
    # t1 and t2 were kept; past them, the queue was read once, and found "new"
    assert reads.count == 1
