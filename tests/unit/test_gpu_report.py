"""What a helper reports of its GPUs: read through a fake NVML module (an
A100, an H100, an A100 with MIG on), nothing where NVML is missing; and the
GPUs a test helper declares with --test-resources @FILE."""

from __future__ import annotations

import json

import pytest

from helper.gpus import gpu_inventory
from helper.resources import declared_resources, host_resources
from seeker.helper_models import HelperResources
from tests.fake_nvml import H100, H200, FakeNVML, GiB, MiB, NVMLError, a100, instance


def test_each_gpu_is_read_with_its_compute_capability_and_the_drivers_cuda():
    nvml = FakeNVML([a100(), H100], cuda=12040)
    assert gpu_inventory(nvml) == [
        {
            "index": 0,
            "name": "NVIDIA A100-SXM4-80GB",
            "uuid": "GPU-a100-0",
            "memory_total": 80 * GiB,
            "memory_free": 79 * GiB,
            "utilization": 12.0,
            "compute_capability": "8.0",
            "cuda_version": "12.4",
        },
        {
            "index": 1,
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": "GPU-h100",
            "memory_total": 80 * GiB,
            "memory_free": 80 * GiB,
            "utilization": 0.0,
            "compute_capability": "9.0",
            "cuda_version": "12.4",
        },
    ]
    assert nvml.shut_down


@pytest.mark.parametrize("driver, cuda", [(12040, "12.4"), (12080, "12.8"), (11080, "11.8")])
def test_the_cuda_version_is_the_drivers_highest(driver, cuda):
    (gpu,) = gpu_inventory(FakeNVML([H100], cuda=driver))
    assert gpu["cuda_version"] == cuda


def test_a_gpu_with_mig_on_lists_its_instances_as_devices():
    sliced = a100(1, mig=[instance("MIG-1"), None, instance("MIG-2", profile_in_name=False)])
    (gpu,) = gpu_inventory(FakeNVML([sliced]))
    assert gpu["utilization"] is None  # NVML does not say with MIG on
    assert gpu["mig"] == [
        {
            "uuid": "MIG-1",
            "profile": "3g.40gb",
            "memory_total": 40192 * MiB,
            "memory_free": 40182 * MiB,
        },
        {
            "uuid": "MIG-2",
            "profile": "3g.40gb",  # from the slices and memory, as NVIDIA names it
            "memory_total": 40192 * MiB,
            "memory_free": 40182 * MiB,
        },
    ]
    assert HelperResources(gpus=[gpu]).gpus[0].mig[1].profile == "3g.40gb"


def test_a_real_h200_reads_as_the_helper_reported_it_there():
    # the helper's own report on that machine, from `helper gpus --json`
    assert gpu_inventory(FakeNVML([H200], cuda=13000)) == [
        {
            "index": 0,
            "name": "NVIDIA H200",
            "uuid": "GPU-215c3d33-41a1-1d50-e233-97c80514c064",
            "memory_total": 150754820096,
            "memory_free": 150109880320,
            "utilization": 0.0,
            "compute_capability": "9.0",
            "cuda_version": "13.0",
        }
    ]


def test_nvml_kept_open_is_opened_once_and_again_after_a_failed_read():
    nvml = FakeNVML([H100])
    for _ in range(3):
        assert gpu_inventory(nvml, keep_open=True)[0]["uuid"] == "GPU-h100"
    assert nvml.opened == 1 and not nvml.shut_down
    nvml.lost = True
    assert gpu_inventory(nvml, keep_open=True) == []  # closed, not left half open
    assert nvml.opened == 0 and nvml.shut_down
    assert gpu_inventory(nvml, keep_open=True)[0]["uuid"] == "GPU-h100"  # opened again
    assert nvml.opened == 1
    gpu_inventory(nvml)  # a read that does not keep it open closes it
    assert nvml.opened == 0


def test_mig_off_or_unsupported_means_no_instances():
    off, older = gpu_inventory(FakeNVML([a100(), H100]))
    assert "mig" not in off and "mig" not in older


def test_no_nvml_means_no_gpus_and_no_error():
    assert gpu_inventory(FakeNVML([a100()], missing=True)) == []
    assert host_resources(nvml=FakeNVML([], missing=True))["gpus"] == []


def test_a_gpu_nvml_cannot_read_is_left_out_and_the_others_reported():
    class Lost(FakeNVML):
        def nvmlDeviceGetHandleByIndex(self, index):
            if index == 0:
                raise NVMLError("GPU is lost")
            return super().nvmlDeviceGetHandleByIndex(index)

    assert [g["uuid"] for g in gpu_inventory(Lost([a100(), H100]))] == ["GPU-h100"]


# --- --test-resources @FILE -------------------------------------------------------------


def test_declared_gpus_from_a_file_take_the_reports_shape(tmp_path):
    path = tmp_path / "two-a100s.json"
    path.write_text(
        json.dumps(
            {
                "cpus": 8,
                "memory": "32g",
                "gpus": [
                    {"name": "NVIDIA A100", "memory_total": "80g", "cuda_version": "12.2"},
                    {
                        "name": "NVIDIA A100",
                        "memory_total": 80 * GiB,
                        "compute_capability": "8.0",
                        "mig": [
                            {"profile": "3g.40gb", "memory_total": "40g"},
                            {"profile": "3g.40gb"},
                        ],
                    },
                ],
            }
        )
    )
    declared = declared_resources(f"@{path}")
    assert (declared["cpus"], declared["memory_total"]) == (8.0, 32 * GiB)
    first, second = declared["gpus"]
    assert (first["index"], first["uuid"], first["memory_free"]) == (0, "TEST-GPU-0", 80 * GiB)
    assert first["cuda_version"] == "12.2"
    assert [m["uuid"] for m in second["mig"]] == ["TEST-MIG-1-0", "TEST-MIG-1-1"]
    assert second["mig"][0]["memory_total"] == 40 * GiB
    HelperResources.model_validate(declared)


@pytest.mark.parametrize(
    "content, says",
    [
        ("not json", "cannot read"),
        ('["a list"]', "a JSON object with cpus, memory, gpus and images only"),
        ('{"cpus": 1, "disks": 2}', "a JSON object with cpus, memory, gpus and images only"),
        ('{"gpus": [{"index": -1}]}', "gpus must be a list of GPU records"),
        ('{"gpus": ["A100"]}', "gpus must be a list of GPU records"),
    ],
)
def test_a_bad_declaration_file_says_what_is_wrong(tmp_path, content, says):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=says):
        declared_resources(f"@{path}")
    with pytest.raises(ValueError, match="cannot read"):
        declared_resources(f"@{tmp_path / 'missing.json'}")
