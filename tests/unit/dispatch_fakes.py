"""Fakes and builders shared by the dispatcher tests: a `push` that answers
like a helper (no HTTP), and helpers and tasks added to mongomock stores."""

from __future__ import annotations

GiB = 1024**3


class FakePush:
    """Records pushes and answers like a helper (with its boot id); raises the
    errors queued for a helper's name, one per push (the last one again and
    again), after calling `during[name]` if set."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.failures: dict[str, list[Exception]] = {}
        self.during: dict[str, object] = {}

    def __call__(self, helper: dict, payload: dict) -> dict:
        self.calls.append((helper["name"], payload))
        if helper["name"] in self.during:
            self.during[helper["name"]]()
        errors = self.failures.get(helper["name"])
        if errors:
            raise errors.pop(0) if len(errors) > 1 else errors[0]
        return {
            "task_id": payload["task_id"],
            "state": "accepted",
            "boot_id": f"boot-{helper['name']}",
        }

    def fail(self, name: str, *errors: Exception) -> None:
        self.failures[name] = list(errors)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def pinned(self) -> dict[str, list[int]]:
        return {p["task_id"]: p["gpu_indices"] for _, p in self.calls}


def add_helper(helpers, clock, name, memory=16 * GiB, slots=4, gpus=0, cpus=8, **fields):
    reg = {
        "helper_id": f"id-{name}",
        "name": name,
        "url": f"http://{name}:7072",
        "slots": slots,
        "resources": {
            "cpus": cpus,
            "memory_total": memory,
            "memory_available": memory,
            "gpus": [
                {"index": i, "memory_free": 16 * GiB, "memory_total": 16 * GiB} for i in range(gpus)
            ],
        },
        **fields,
    }
    return helpers.register(reg, clock())


def add_task(tasks, clock, task_id="t1", memory=GiB, gpus=0, cpus=0, **spec) -> str:
    resources = {"cpus": cpus, "memory": memory, "gpus": gpus, "gpu_memory": 0}
    tasks.create(task_id, {"image": "busybox:1.36", "resources": resources, **spec}, clock())
    clock.advance(1)
    return task_id


def states(tasks, task_id) -> list[tuple[str, str]]:
    """(helper name, assignment state) for each assignment of the task."""
    return [(a["helper_name"], a["state"]) for a in tasks.assignments_of(task_id)]


class Counting:
    """A collection that counts the calls made on it."""

    def __init__(self, collection):
        self._collection = collection
        self.calls: list[str] = []

    def __getattr__(self, name):
        real = getattr(self._collection, name)
        if not callable(real):
            return real

        def call(*args, **kwargs):
            self.calls.append(name)
            return real(*args, **kwargs)

        return call
