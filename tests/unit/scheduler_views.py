"""Views of helpers and tasks for the scheduler tests."""

from __future__ import annotations

from seeker.placement.views import GpuView, HelperView, TaskView

GiB = 1024**3


def helper(name="h", **fields) -> HelperView:
    defaults = {"cpus_total": 8, "cpus_free": 8, "memory_total": 16 * GiB}
    defaults["memory_free"] = fields.get("memory_total", defaults["memory_total"])
    return HelperView(f"id-{name}", name, **{**defaults, **fields})


def task(task_id="t1", **fields) -> TaskView:
    return TaskView(task_id, **fields)


def gpu(index: int, free_gib: float, total_gib: float = 16) -> GpuView:
    return GpuView(index, int(free_gib * GiB), int(total_gib * GiB))


def gpus(*free_gib: float) -> tuple[GpuView, ...]:
    """GPUs 0, 1, ... of 16 GiB with that much free memory each."""
    return tuple(gpu(i, f) for i, f in enumerate(free_gib))
