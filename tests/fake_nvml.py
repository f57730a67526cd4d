"""A fake NVML module (the part of pynvml the helper calls) and GPU records
for it: an A100, an H100, MIG instances, and a real H200's answers."""

from __future__ import annotations

from types import SimpleNamespace

GiB = 1024**3
MiB = 1024**2


class NVMLError(Exception):
    pass


class NotFound(NVMLError):
    pass


class NotSupported(NVMLError):
    pass


class LibraryNotFound(NVMLError):
    pass


class FakeNVML:
    """The part of pynvml the helper calls, over a list of GPU records; a
    MIG device is a handle of its own, as in NVML."""

    NVMLError = NVMLError
    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(self, gpus: list[dict], cuda: int = 12040, missing: bool = False, **calls):
        self.gpus = gpus
        self.cuda = cuda
        self.missing = missing
        self.calls = calls
        self.shut_down = False
        self.opened = 0  # NVML counts its opens
        self.lost = False  # the driver went away: every call fails

    def nvmlInit(self):
        if self.missing:
            raise LibraryNotFound("NVML Shared Library Not Found")
        self.opened += 1
        self.lost = False

    def nvmlShutdown(self):
        self.opened -= 1
        self.shut_down = self.opened == 0

    def nvmlSystemGetCudaDriverVersion_v2(self):
        return self.cuda

    def nvmlDeviceGetCount(self):
        if self.lost:
            raise NVMLError("Driver Not Loaded")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.gpus[index]

    def nvmlDeviceGetName(self, handle):
        return handle["name"].encode()  # older pynvml answers bytes

    def nvmlDeviceGetUUID(self, handle):
        return handle["uuid"]

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(total=handle["total"], free=handle["free"], used=0)

    def nvmlDeviceGetUtilizationRates(self, handle):
        if handle.get("mig"):
            raise NotSupported("Not Supported")
        return SimpleNamespace(gpu=handle["util"], memory=0)

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return handle["cc"]

    def nvmlDeviceGetMigMode(self, handle):
        if "mig" not in handle:
            raise NotSupported("Not Supported")  # before Ampere
        return [1 if handle["mig"] else 0, 0]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, slot):
        instances = handle["mig"]
        if slot >= len(instances) or instances[slot] is None:
            raise NotFound("Not Found")
        return instances[slot]

    def nvmlDeviceGetAttributes(self, handle):
        return handle["attributes"]


def a100(index=0, **fields):
    return {
        "name": "NVIDIA A100-SXM4-80GB",
        "uuid": f"GPU-a100-{index}",
        "total": 80 * GiB,
        "free": 79 * GiB,
        "util": 12,
        "cc": (8, 0),
        "mig": [],  # MIG capable, off
        **fields,
    }


H100 = {
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": "GPU-h100",
    "total": 80 * GiB,
    "free": 80 * GiB,
    "util": 0,
    "cc": (9, 0),
}


# as NVML answered on a real H200 (driver 580.159.04, nvidia-ml-py 13.610.43,
# 2026-12-04; docs/gpu-hosts.md): NVML 13's name is a str, its CUDA 13000
H200 = {
    "name": "NVIDIA H200",
    "uuid": "GPU-215c3d33-41a1-1d50-e233-97c80514c064",
    "total": 150754820096,
    "free": 150109880320,
    "util": 0,
    "cc": (9, 0),
    "mig": [],  # MIG capable, off: nvmlDeviceGetMigMode answered [0, 0]
}


def instance(uuid, profile_in_name=True, slices=3, memory_mb=40192):
    name = "NVIDIA A100-SXM4-80GB MIG 3g.40gb" if profile_in_name else "NVIDIA A100-SXM4-80GB"
    return {
        "name": name,
        "uuid": uuid,
        "total": memory_mb * MiB,
        "free": memory_mb * MiB - 10 * MiB,
        "attributes": SimpleNamespace(
            gpuInstanceSliceCount=slices, computeInstanceSliceCount=slices, memorySizeMB=memory_mb
        ),
    }
