"""What the scheduler knows of a helper and of a task at one moment: plain
frozen views, built from the database documents by `capacity.py`."""

from __future__ import annotations

from dataclasses import dataclass, field

from seeker.models import Placement


@dataclass(frozen=True)
class GpuView:
    """A device a task can be given: a whole GPU, or one MIG instance of a
    GPU with MIG on (`profile` set, `index` the GPU's)."""

    index: int
    memory_free: int  # as the helper reported it
    memory_total: int = 0
    uuid: str = ""  # the MIG instance's for a MIG device
    name: str = ""  # the GPU's model, e.g. "NVIDIA A100-SXM4-80GB"
    profile: str = ""  # a MIG instance's profile, e.g. "3g.20gb"
    compute_capability: str = ""
    cuda_version: str = ""
    share_free: float = 1.0  # what live shares (0 < gpus < 1) left of it
    memory_reserved: int = 0  # by those shares

    @property
    def key(self) -> str:
        """What reservations name the device by: its uuid, else its index."""
        return self.uuid or f"#{self.index}"

    @property
    def memory_available(self) -> int:
        """Free memory less what shares reserved and have not taken yet: the
        report already counts what running shares use, so the smaller of the
        two (their use shows in one, their reservation in the other)."""
        if not self.memory_reserved:
            return self.memory_free
        return max(0, min(self.memory_free, self.memory_total - self.memory_reserved))


@dataclass(frozen=True)
class HelperView:
    """What the scheduler knows of a helper at one moment, after subtracting
    what live assignments have reserved on it."""

    helper_id: str
    name: str
    slots: int = 1
    running: int = 0  # live assignments, queued ones included
    prefetch: int = 0  # assignments it accepts beyond its slots, to start next
    cpus_total: float = 0
    cpus_free: float = 0
    memory_total: int = 0
    memory_free: int = 0
    gpus_free: tuple[GpuView, ...] = ()  # devices with some of them left (whole or share)
    gpus_total: int = 0  # devices in all
    labels: dict = field(default_factory=dict)
    online: bool = True
    failures: int = 0
    allowed_images: tuple[str, ...] = ()  # none: every image
    allowed_mounts: tuple[str, ...] = ()  # none: no host mounts
    gpus_taken: tuple[GpuView, ...] = ()  # devices live assignments hold whole
    images: frozenset[str] = frozenset()  # references it has, normalised (helper/images.py)

    @property
    def devices(self) -> tuple[GpuView, ...]:
        """Every device, free or not: what the GPU model and version filters read."""
        return self.gpus_free + self.gpus_taken if self.gpus_taken else self.gpus_free


@dataclass(frozen=True)
class TaskView:
    """What the scheduler needs of a task."""

    task_id: str
    cpus: float = 0
    memory: int = 0
    gpus: int | float = 0  # whole GPUs, or a share of one below 1
    gpu_memory: int = 0
    constraints: dict = field(default_factory=dict)
    placement: Placement = Placement.SPREAD
    running_on: frozenset = frozenset()  # helper ids with a live replica
    failed_on: frozenset = frozenset()  # helper ids where a run failed
    image: str = ""
    mounts: tuple[str, ...] = ()  # host paths
    gpu_model: str = ""  # part of a GPU's name or MIG profile, any case
    min_cuda: str = ""
    min_compute_capability: str = ""
    # may take a place in a helper's queue (its prefetch): the dispatcher
    # asks again with this when no helper has a free slot for the task
    may_wait: bool = False

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
            res.get("gpu_model") or "",
            res.get("min_cuda") or "",
            res.get("min_compute_capability") or "",
        )
