"""What the TaskStore contract tests share (tests/unit/test_task_*_contract.py,
test_live_assignments_contract.py): a task's spec, two helpers, and ways
to make and watch tasks."""

from __future__ import annotations

from seeker.store.tasks import TaskStore

SPEC = {"image": "busybox:1.36", "resources": {"cpus": 1, "memory": 0, "gpus": 0}}
HELPER = {"helper_id": "h1", "name": "gpu-1"}
OTHER = {"helper_id": "h2", "name": "gpu-2"}


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
