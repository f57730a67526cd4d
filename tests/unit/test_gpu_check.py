"""`helper gpus`: NVML read through a fake, the seeker's model and placement
run for real, and the container step through a fake runtime that answers
what `nvidia-smi -L` would list in the container."""

from __future__ import annotations

import json
from dataclasses import replace

from click.testing import CliRunner

from channel.models import ResultStatus
from helper import gpu_check
from helper.gpu_check import check_gpus, describe, placement_refuses
from helper.runs import RunOutcome
from seeker.placement.gpus import devices_of
from tests.fake_nvml import H100, H200, FakeNVML, a100, instance


class FakeRuntime:
    """Lists, as `nvidia-smi -L` does, the devices a container was given
    (or `sees`, to play a toolkit that hands out the wrong ones)."""

    def __init__(self, sees: list[str] | None = None, exit_code: int = 0):
        self.sees = sees
        self.exit_code = exit_code
        self.specs = []

    def run(self, spec):
        self.specs.append(spec)
        listed = self.sees if self.sees is not None else spec.gpu_uuids
        out = "".join(f"GPU {i}: NVIDIA (UUID: {u})\n" for i, u in enumerate(listed))
        status = ResultStatus.SUCCEEDED if self.exit_code == 0 else ResultStatus.FAILED
        return RunOutcome(status, exit_code=self.exit_code, stdout=out.encode())


def test_each_gpu_is_placed_and_run_on_alone():
    runtime = FakeRuntime()
    check = check_gpus(FakeNVML([a100(), H100]), runtime, "cuda:12")
    assert check.ok, describe(check)
    assert [d.uuid for d in check.devices] == ["GPU-a100-0", "GPU-h100"]
    # the container asked Docker for that device by uuid, as a task's would
    assert [(s.gpu_uuids, s.command, s.pull) for s in runtime.specs] == [
        (["GPU-a100-0"], ["nvidia-smi", "-L"], "never"),
        (["GPU-h100"], ["nvidia-smi", "-L"], "never"),
    ]
    assert describe(check).splitlines()[-1] == "ok"


def test_a_container_that_sees_another_gpu_fails_the_check():
    check = check_gpus(FakeNVML([a100(), H100]), FakeRuntime(sees=["GPU-a100-0", "GPU-h100"]), "i")
    assert not check.ok
    assert check.failures() == [
        "GPU-a100-0: the container saw other devices too: ['GPU-h100']",
        "GPU-h100: the container saw other devices too: ['GPU-a100-0']",
    ]


def test_a_container_that_sees_nothing_or_fails_says_so():
    blind = check_gpus(FakeNVML([H100]), FakeRuntime(sees=[]), "i")
    assert blind.failures() == ["GPU-h100: the container did not see this device; it listed none"]
    broken = check_gpus(FakeNVML([H100]), FakeRuntime(exit_code=127), "i")
    assert broken.failures()[0].startswith("GPU-h100: the container failed (exit 127)")


def test_a_mig_instance_is_checked_as_a_device_of_its_own():
    sliced = a100(0, mig=[instance("MIG-1"), instance("MIG-2")])
    runtime = FakeRuntime(sees=["GPU-a100-0", "MIG-1"])  # listed under its GPU
    check = check_gpus(FakeNVML([sliced]), runtime, "i")
    assert [(d.uuid, d.what) for d in check.devices] == [
        ("MIG-1", "NVIDIA A100-SXM4-80GB MIG 3g.40gb"),
        ("MIG-2", "NVIDIA A100-SXM4-80GB MIG 3g.40gb"),
    ]
    assert check.devices[0].container == ""
    assert "did not see this device" in check.devices[1].container
    # another GPU beside its own is another device
    beside = FakeRuntime(sees=["GPU-a100-0", "MIG-1", "GPU-a100-1"])
    check = check_gpus(FakeNVML([sliced, a100(1)]), beside, "i")
    assert check.devices[0].container == "the container saw other devices too: ['GPU-a100-1']"


def test_a_report_the_seeker_would_refuse_is_named_before_any_container_runs():
    runtime = FakeRuntime()
    check = check_gpus(FakeNVML([{**H100, "uuid": "x" * 300}]), runtime, "i")
    assert not check.ok and "uuid" in check.refused
    assert runtime.specs == []


def test_without_an_image_no_container_runs():
    check = check_gpus(FakeNVML([H100]))
    assert check.ok and check.devices[0].placed == "" and check.devices[0].container == ""


def test_the_command_exits_1_without_gpus_and_prints_json(monkeypatch):
    monkeypatch.setattr(gpu_check, "gpu_inventory", lambda nvml=None: [])
    result = CliRunner().invoke(gpu_check.gpus, ["--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["ok"] is False
    assert "no GPUs found" in result.stderr


def test_the_seeker_places_on_a_real_h200_only_what_it_can_run():
    check = check_gpus(FakeNVML([H200], cuda=13000))
    assert check.ok and check.devices[0].what == "NVIDIA H200"
    (h200,) = devices_of(check.gpus)
    assert placement_refuses(check.gpus, h200) == ""
    newer = replace(h200, compute_capability="10.0")  # a Blackwell build
    assert "compute capability" in placement_refuses(check.gpus, newer)
    assert "CUDA" in placement_refuses(check.gpus, replace(h200, cuda_version="13.1"))
