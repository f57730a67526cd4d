"""GPUs in placement: which of a helper's devices a task may be given (by GPU
model, CUDA version and compute capability; whole, or a share of one), the
filters that say why none fits, and what an assignment reserves.

A device is a whole GPU, or one MIG instance of a GPU with MIG on: such a GPU
is given only as its instances. A task asks for `gpus` whole devices, or for
a share (0 < gpus < 1) of one device that other shares may use too; shares
on a device never add up past 1, and a share's `gpu_memory` is reserved on
its device."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace

from seeker.placement.views import GpuView, HelperView, TaskView

NOT_ENOUGH_GPUS = "not enough free GPUs"
NOT_ENOUGH_GPU_MEMORY = "not enough free GPU memory"
EPS = 1e-9  # shares are floats: four 0.25 shares fill a GPU, 0.1 + 0.2 + 0.7 does too


# --- versions ------------------------------------------------------------------------


def version(text: str | None) -> tuple[int, int, int] | None:
    """'12.4' -> (12, 4, 0), so that '12.10' > '12.4' and '12' == '12.0';
    None for what is not a version."""
    if not text or not re.fullmatch(r"[0-9]+(\.[0-9]+){0,2}", text.strip()):
        return None
    parts = [int(p) for p in text.strip().split(".")]
    return tuple(parts + [0] * (3 - len(parts)))  # type: ignore[return-value]


def at_least(have: str | None, want: str) -> bool:
    """Whether version `have` is `want` or later (unknown: no)."""
    have_v, want_v = version(have), version(want)
    return have_v is not None and want_v is not None and have_v >= want_v


def highest(versions: Iterable[str]) -> str:
    """The highest of some versions as written, 'unknown' when none is one."""
    known = [v for v in versions if version(v) is not None]
    return max(known, key=version) if known else "unknown"  # type: ignore[arg-type]


# --- what a task asks ----------------------------------------------------------------


def is_share(gpus: float) -> bool:
    return 0 < gpus < 1


def devices_needed(task: TaskView) -> int:
    """How many devices the task is given: its whole GPUs, or one for a share."""
    return 1 if is_share(task.gpus) else int(task.gpus)


def share_of(task: TaskView) -> float:
    """How much of each device it takes: all of it, or its share."""
    return task.gpus if is_share(task.gpus) else 1.0


def matches_model(device: GpuView, model: str) -> bool:
    """`model` is part of the device's GPU name or MIG profile, in any case."""
    model = model.lower()
    return model in device.name.lower() or model in device.profile.lower()


def of_model(task: TaskView, devices: Iterable[GpuView]) -> list[GpuView]:
    model = task.gpu_model
    return [d for d in devices if matches_model(d, model)] if model else list(devices)


def with_cuda(task: TaskView, devices: list[GpuView]) -> list[GpuView]:
    want = task.min_cuda
    return [d for d in devices if at_least(d.cuda_version, want)] if want else devices


def with_capability(task: TaskView, devices: list[GpuView]) -> list[GpuView]:
    want = task.min_compute_capability
    return [d for d in devices if at_least(d.compute_capability, want)] if want else devices


def eligible(task: TaskView, devices: Iterable[GpuView]) -> list[GpuView]:
    """The devices of the model, CUDA version and compute capability asked."""
    return with_capability(task, with_cuda(task, of_model(task, devices)))


def free_for(task: TaskView, helper: HelperView) -> list[GpuView]:
    """The eligible devices with room for the task: wholly free for whole
    GPUs, with at least its share left for a share."""
    share = share_of(task)
    return [d for d in eligible(task, helper.gpus_free) if d.share_free + EPS >= share]


# --- filters, in the order pipeline.FILTERS runs them ----------------------------------


def no_gpu_model(task: TaskView) -> str:
    return f"no GPU model {task.gpu_model}"


def has_gpu_model(t: TaskView, h: HelperView) -> str | None:
    """Some device, free or not, is of the model asked."""
    if not t.gpu_model or any(matches_model(d, t.gpu_model) for d in h.devices):
        return None
    return no_gpu_model(t)


def has_cuda(t: TaskView, h: HelperView) -> str | None:
    """Some device of the model asked has a driver with CUDA >= min_cuda (a
    helper without GPUs is left to has_gpus)."""
    if not t.min_cuda:
        return None
    devices = of_model(t, h.devices)
    if not devices or with_cuda(t, devices):
        return None
    return f"CUDA {highest(d.cuda_version for d in devices)} < {t.min_cuda}"


def has_compute_capability(t: TaskView, h: HelperView) -> str | None:
    """Some device of the model and CUDA asked has the compute capability."""
    if not t.min_compute_capability:
        return None
    devices = with_cuda(t, of_model(t, h.devices))
    if not devices or with_capability(t, devices):
        return None
    best = highest(d.compute_capability for d in devices)
    return f"compute capability {best} < {t.min_compute_capability}"


def has_gpus(t: TaskView, h: HelperView) -> str | None:
    if not t.gpus:
        return None
    return None if len(free_for(t, h)) >= devices_needed(t) else NOT_ENOUGH_GPUS


def has_gpu_memory(t: TaskView, h: HelperView) -> str | None:
    if not t.gpus or not t.gpu_memory:
        return None
    fitting = sum(1 for d in free_for(t, h) if d.memory_available >= t.gpu_memory)
    return None if fitting >= devices_needed(t) else NOT_ENOUGH_GPU_MEMORY


# --- reservation ---------------------------------------------------------------------


def reserve_devices(task: TaskView, helper: HelperView) -> list[GpuView]:
    """The devices to give `task` on `helper`, by index: for whole GPUs the
    ones with the most free memory; for a share the fullest device it fits
    on (shares pack together and leave whole GPUs whole)."""
    if not task.gpus:
        return []
    fitting = [d for d in free_for(task, helper) if d.memory_available >= task.gpu_memory]
    if is_share(task.gpus):
        fitting.sort(key=lambda d: (d.share_free, -d.memory_available, d.index, d.uuid))
    else:
        fitting.sort(key=lambda d: (-d.memory_available, d.index, d.uuid))
    need = devices_needed(task)
    if len(fitting) < need:
        raise ValueError(f"{helper.name} has only {len(fitting)} fitting free GPUs")
    return sorted(fitting[:need], key=lambda d: (d.index, d.uuid))


def reserve_gpus(task: TaskView, helper: HelperView) -> list[int]:
    """The GPU indices of the devices reserve_devices() picks."""
    return [d.index for d in reserve_devices(task, helper)]


def reservation_for(task: TaskView, helper: HelperView) -> dict:
    """What an assignment of `task` to `helper` holds there while it is live,
    self-describing: capacity is worked out from these alone."""
    reservation = {"cpus": task.cpus, "memory": task.memory, "gpus": task.gpus}
    devices = reserve_devices(task, helper)
    reservation["gpu_indices"] = [d.index for d in devices]
    if devices:
        reservation["gpu_uuids"] = [d.uuid for d in devices] if all(d.uuid for d in devices) else []
        reservation["gpu_devices"] = [
            {
                "index": d.index,
                "uuid": d.uuid,
                "name": d.name,
                "profile": d.profile,
                "share": share_of(task),
                "memory": task.gpu_memory,
            }
            for d in devices
        ]
    return reservation


# --- capacity ------------------------------------------------------------------------


def devices_of(report: list[dict]) -> list[GpuView]:
    """A helper's devices, from the GPUs it reported: each GPU, or each MIG
    instance of a GPU with MIG on."""
    devices = []
    for g in report:
        common = {
            "index": g["index"],
            "name": g.get("name") or "",
            "compute_capability": g.get("compute_capability") or "",
            "cuda_version": g.get("cuda_version") or "",
        }
        if not g.get("mig"):
            devices.append(
                GpuView(
                    memory_free=g.get("memory_free", 0),
                    memory_total=g.get("memory_total", 0),
                    uuid=g.get("uuid") or "",
                    **common,
                )
            )
            continue
        for m in g["mig"]:
            total = m.get("memory_total", 0)
            free = m.get("memory_free")
            devices.append(
                GpuView(
                    memory_free=total if free is None else free,
                    memory_total=total,
                    uuid=m.get("uuid") or "",
                    profile=m.get("profile") or "",
                    **common,
                )
            )
    return devices


def device_key(entry: dict) -> str:
    """The key of the device a reservation's `gpu_devices` entry names."""
    return entry.get("uuid") or f"#{entry['index']}"


def after_reservations(
    devices: Sequence[GpuView], reservations: Iterable[dict]
) -> tuple[tuple[GpuView, ...], tuple[GpuView, ...]]:
    """The devices less what `reservations` hold: (those with some room
    left, those held whole). A reservation names its devices in
    `gpu_devices` (share and memory of each); one without them (as written
    before shares) holds the whole GPUs of its `gpu_indices`."""
    if not devices:
        return (), ()
    shares: dict[str, float] = {}
    memory: dict[str, int] = {}
    whole_indices: set[int] = set()
    for r in reservations:
        if "gpu_devices" in r:
            for entry in r["gpu_devices"]:
                key = device_key(entry)
                shares[key] = shares.get(key, 0.0) + entry.get("share", 1.0)
                memory[key] = memory.get(key, 0) + entry.get("memory", 0)
        else:
            whole_indices.update(r.get("gpu_indices", []))
    free: list[GpuView] = []
    taken: list[GpuView] = []
    for d in devices:
        taken_share = 1.0 if d.index in whole_indices and not d.profile else shares.get(d.key, 0.0)
        if taken_share:
            d = replace(
                d,
                share_free=round(d.share_free - taken_share, 9),
                memory_reserved=d.memory_reserved + memory.get(d.key, 0),
            )
        (free if d.share_free > EPS else taken).append(d)
    return tuple(free), tuple(taken)


def device_use(report: list[dict], reservations: list[dict]) -> list[dict]:
    """How much of each device of a helper its live assignments hold (`taken`:
    0 to 1) and the GPU memory they reserved there: what `seeker helpers` shows."""
    free, taken = after_reservations(devices_of(report), reservations)
    return [
        {
            "index": d.index,
            "uuid": d.uuid,
            "profile": d.profile,
            "taken": round(1.0 - d.share_free, 6),
            "memory_reserved": d.memory_reserved,
        }
        for d in sorted(free + taken, key=lambda d: (d.index, d.uuid))
    ]
