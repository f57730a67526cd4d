"""What this host offers: CPUs, memory, disk (psutil) and GPUs (NVML, in
gpus.py); or, for tests, what a helper declares instead."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import psutil

from helper.gpus import gpu_inventory
from helper.images import normalised_images


def host_resources(data_dir: Path | None = None, nvml: Any = None, keep_open: bool = False) -> dict:
    """`keep_open`: NVML stays open for the next call (gpus.py)."""
    mem = psutil.virtual_memory()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    disk = psutil.disk_usage(str(data_dir or "/")).free
    return {
        "cpus": float(psutil.cpu_count() or 1),
        "cpu_load": load,
        "memory_total": int(mem.total),
        "memory_available": int(mem.available),
        "disk_free": int(disk),
        "gpus": gpu_inventory(nvml, keep_open),
    }


def declared_resources(text: str) -> dict:
    """TEST ONLY: resources a helper declares instead of measuring, from
    'cpus=8,memory=32g,gpus=2,gpu_memory=16g', or from a JSON file given as
    '@FILE' (see declared_from_file). Declared GPUs are not real: the helper
    asks Docker for no device and only tells the container which it was
    given (SEEKER_GPU_INDICES, SEEKER_GPU_UUIDS)."""
    from serving.schema import parse_bytes

    if text.startswith("@"):
        return declared_from_file(Path(text[1:]))
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


def declared_from_file(path: Path) -> dict:
    """TEST ONLY: a JSON object with `cpus`, `memory` (bytes or '32g'),
    `gpus`, a list of GPU records in the report's own shape, e.g.
    {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory_total": 85899345920,
    "compute_capability": "8.0", "cuda_version": "12.2", "mig": [{"profile":
    "3g.40gb", "memory_total": 42949672960}]}, and `images`, the image
    references to report instead of Docker's list (`[]`: none). Left out of
    a GPU record: `index` is the record's place, `uuid` TEST-GPU-<index>
    (TEST-MIG-<index>-<n> for an instance), `memory_free` all of it."""
    from seeker.helper_models import GpuInfo
    from serving.schema import parse_bytes

    try:
        declared = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path} as JSON: {exc}") from None
    if not isinstance(declared, dict) or set(declared) - {"cpus", "memory", "gpus", "images"}:
        raise ValueError(f"{path}: expected a JSON object with cpus, memory, gpus and images only")
    out: dict = {}
    if "cpus" in declared:
        out["cpus"] = float(declared["cpus"])
    if "memory" in declared:
        out["memory_total"] = out["memory_available"] = parse_bytes(declared["memory"])
    if "gpus" in declared:
        try:
            out["gpus"] = [
                GpuInfo.model_validate(declared_gpu(i, g)).model_dump(mode="json")
                for i, g in enumerate(declared["gpus"])
            ]
        except (TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"{path}: gpus must be a list of GPU records: {exc}") from None
    if "images" in declared:
        images = declared["images"]
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise ValueError(f"{path}: images must be a list of image references")
        out["images"] = normalised_images(images)
    return out


def declared_gpu(position: int, record: dict) -> dict:
    """A declared GPU record with what was left out filled in (and sizes
    such as '80g' read as bytes)."""
    gpu = sizes_read({"index": position, "utilization": 0.0, **record})
    gpu.setdefault("uuid", f"TEST-GPU-{gpu['index']}")
    gpu.setdefault("memory_free", gpu.get("memory_total", 0))
    if gpu.get("mig"):
        gpu["mig"] = [
            sizes_read({"uuid": f"TEST-MIG-{gpu['index']}-{n}", **instance})
            for n, instance in enumerate(gpu["mig"])
        ]
    return gpu


def sizes_read(record: dict) -> dict:
    from seeker.models import parse_bytes

    for key in ("memory_total", "memory_free"):
        if isinstance(record.get(key), str):
            record[key] = parse_bytes(record[key])
    return record
