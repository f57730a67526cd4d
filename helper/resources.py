"""What this host offers: CPUs, memory, disk and GPUs (through NVML)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import psutil

log = logging.getLogger(__name__)
_said_no_gpus = False


def gpu_inventory() -> list[dict]:
    """Every GPU NVML sees; none (and no error) where NVML or a driver is missing."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        global _said_no_gpus
        if not _said_no_gpus:
            log.info("no GPUs: NVML unavailable (%s)", exc)
            _said_no_gpus = True
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                util = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:
                util = None
            name = pynvml.nvmlDeviceGetName(handle)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            gpus.append(
                {
                    "index": index,
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "uuid": uuid.decode() if isinstance(uuid, bytes) else uuid,
                    "memory_total": int(mem.total),
                    "memory_free": int(mem.free),
                    "utilization": util,
                }
            )
        return gpus
    finally:
        pynvml.nvmlShutdown()


def host_resources(data_dir: Path | None = None) -> dict:
    mem = psutil.virtual_memory()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    disk = psutil.disk_usage(str(data_dir or "/")).free
    return {
        "cpus": float(psutil.cpu_count() or 1),
        "cpu_load": load,
        "memory_total": int(mem.total),
        "memory_available": int(mem.available),
        "disk_free": int(disk),
        "gpus": gpu_inventory(),
    }


def declared_resources(text: str) -> dict:
    """TEST ONLY: resources a helper declares instead of measuring, from
    'cpus=8,memory=32g,gpus=2,gpu_memory=16g'. Declared GPUs are not real:
    the helper asks Docker for no device and only tells the container which
    indices it was given (SEEKER_GPU_INDICES)."""
    from serving.schema import parse_bytes

    known = {"cpus", "memory", "gpus", "gpu_memory"}
    values: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise ValueError(f"{item!r}: expected one of {', '.join(sorted(known))} as KEY=VALUE")
        values[key] = value
    out: dict = {}
    if "cpus" in values:
        out["cpus"] = float(values["cpus"])
    if "memory" in values:
        out["memory_total"] = out["memory_available"] = parse_bytes(values["memory"])
    if "gpus" in values:
        size = parse_bytes(values.get("gpu_memory", "16g"))
        out["gpus"] = [
            {
                "index": i,
                "name": "declared test GPU",
                "uuid": f"TEST-GPU-{i}",
                "memory_total": size,
                "memory_free": size,
                "utilization": 0.0,
            }
            for i in range(int(values["gpus"]))
        ]
    return out
