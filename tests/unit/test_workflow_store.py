"""The workflow store's steps (tasks held until the tasks they run after
succeed, released or cancelled down the chain, arrays), over every backend."""

from __future__ import annotations

import pytest

from seeker.store.tasks import TaskStore
from seeker.store.workflows import WorkflowStore


@pytest.fixture
def store(mongo_db) -> WorkflowStore:
    TaskStore(mongo_db).ensure_indexes()
    s = WorkflowStore.in_db(mongo_db)
    s.ensure_indexes()
    return s


def held(store, clock, task_id, waiting) -> dict:
    doc = store.document(task_id, {"image": "busybox", "replicas": 2}, clock(), waiting)
    store.insert([doc])
    return doc


def source(task_id: str) -> dict:
    return {"task_id": task_id, "helper_id": "h1", "attempt": 1}


class TestWorkflowStore:
    def test_a_held_task_is_not_work_to_place_until_released(self, mongo_db, store, clock):
        tasks = TaskStore(mongo_db)
        doc = held(store, clock, "d", ["x"])
        assert (doc["open"], doc["open_on_release"], doc["waiting_for"]) == (0, 2, ["x"])
        assert list(tasks.queue()) == []
        assert store.dependents("x") == ["d"]
        assert store.release("x", source("x"), ["d"], clock()) == 1
        task = tasks.get("d")
        assert (task["open"], task["waiting_for"], task["released_by"]) == (2, [], [source("x")])
        assert "open_on_release" not in task
        assert [t["_id"] for t in tasks.queue()] == ["d"]
        assert store.release("x", source("x"), ["d"], clock()) == 0  # again: nothing changes
        assert tasks.get("d")["released_by"] == [source("x")]

    def test_what_waits_for_several_tasks_is_found_in_one_query(self, store, clock):
        held(store, clock, "d1", ["x"])
        held(store, clock, "d2", ["x", "y"])
        held(store, clock, "d3", ["z"])
        found = store.dependents_of(["x", "y", "w"])
        assert {k: sorted(v) for k, v in found.items()} == {"x": ["d1", "d2"], "y": ["d2"]}
        assert store.dependents_of(["x", "y"], only=["d2"]) == {"x": ["d2"], "y": ["d2"]}

    def test_a_task_waits_for_every_dependency(self, mongo_db, store, clock):
        held(store, clock, "d", ["x", "y"])
        assert store.release("x", source("x"), ["d"], clock()) == 0
        assert TaskStore(mongo_db).get("d")["waiting_for"] == ["y"]
        assert store.release("y", source("y"), ["d"], clock()) == 1

    def test_two_releases_at_once_in_either_order_free_it(self, mongo_db, store, clock):
        # each release pulls its task, then opens what waits for nothing: the
        # later pull is always followed by an open that sees the list empty
        held(store, clock, "d", ["x", "y"])
        store.tasks.update_many({"_id": "d"}, {"$pull": {"waiting_for": "x"}})  # x's first step
        assert store.release("y", source("y"), ["d"], clock()) == 1  # y's two steps
        assert store.open_released(clock(), ["d"]) == 0  # x's second step: nothing left

    def test_a_release_cut_short_is_finished_by_the_sweep(self, mongo_db, store, clock):
        held(store, clock, "d", ["x"])
        store.tasks.update_many({"_id": "d"}, {"$pull": {"waiting_for": "x"}})  # then it died
        assert list(TaskStore(mongo_db).queue()) == []
        assert store.open_released(clock()) == 1
        assert TaskStore(mongo_db).get("d")["open"] == 2

    def test_cancel_only_what_still_waits_for_that_task(self, mongo_db, store, clock):
        held(store, clock, "a", ["x"])
        held(store, clock, "b", ["y"])
        cancelled = store.cancel({"waiting_for": "x"}, "dependency x failed", clock())
        assert [d["_id"] for d in cancelled] == ["a"]
        a = TaskStore(mongo_db).get("a")
        assert (a["state"], a["error"]) == ("cancelled", "dependency x failed")
        assert [h["state"] for h in a["history"]] == ["pending", "cancelled"]
        assert TaskStore(mongo_db).get("b")["state"] == "pending"

    def test_an_array_is_counted_by_state(self, store, clock):
        docs = [
            store.document(f"t{i}", {"image": "busybox"}, clock(), array=("arr-1", i))
            for i in range(5)
        ]
        store.insert(docs)
        store.cancel({"_id": {"$in": ["t0", "t1"]}}, "cancelled by user", clock())
        assert store.array_counts("arr-1") == {"cancelled": 2, "pending": 3}
        cancelled = store.cancel({"array_id": "arr-1"}, "cancelled by user", clock())
        assert [d["_id"] for d in cancelled] == ["t2", "t3", "t4"]  # not those cancelled before
        assert store.array_tasks(["arr-1"]) == [f"t{i}" for i in range(5)]
        assert store.array_counts("arr-none") == {}
