"""What the scheduler knows of a helper and of a task at one moment: plain
frozen views, built from the database documents by `capacity.py`."""

from __future__ import annotations

from dataclasses import dataclass, field

from seeker.models import Placement


@dataclass(frozen=True)
class GpuView:
    index: int
    memory_free: int
    memory_total: int = 0


@dataclass(frozen=True)
class HelperView:
    """What the scheduler knows of a helper at one moment, after subtracting
    what live assignments have reserved on it."""

    helper_id: str
    name: str
    slots: int = 1
    running: int = 0
    cpus_total: float = 0
    cpus_free: float = 0
    memory_total: int = 0
    memory_free: int = 0
    gpus_free: tuple[GpuView, ...] = ()  # unreserved GPUs
    gpus_total: int = 0
    labels: dict = field(default_factory=dict)
    online: bool = True
    failures: int = 0
    allowed_images: tuple[str, ...] = ()  # none: every image
    allowed_mounts: tuple[str, ...] = ()  # none: no host mounts


@dataclass(frozen=True)
class TaskView:
    """What the scheduler needs of a task."""

    task_id: str
    cpus: float = 0
    memory: int = 0
    gpus: int = 0
    gpu_memory: int = 0
    constraints: dict = field(default_factory=dict)
    placement: Placement = Placement.SPREAD
    running_on: frozenset = frozenset()  # helper ids with a live replica
    failed_on: frozenset = frozenset()  # helper ids where a run failed
    image: str = ""
    mounts: tuple[str, ...] = ()  # host paths

    @classmethod
    def from_spec(cls, task_id: str, spec: dict, running_on=(), failed_on=()) -> TaskView:
        res = spec.get("resources") or {}
        return cls(
            task_id,
            res.get("cpus", 0),
            res.get("memory", 0),
            res.get("gpus", 0),
            res.get("gpu_memory", 0),
            spec.get("constraints") or {},
            Placement(spec.get("placement", Placement.SPREAD)),
            frozenset(running_on),
            frozenset(failed_on),
            spec.get("image", ""),
            tuple(m["source"] for m in spec.get("mounts") or []),
        )
