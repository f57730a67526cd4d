"""`helper gpus --run` against a real Docker engine on a host without GPUs:
NVML is the fake that replays a real H200's answers, the container is real.
Docker receives the helper's device request for that GPU's uuid, and with
no NVIDIA runtime behind it (this machine, CI) the check fails naming
Docker's own refusal, leaving no container behind. On a GPU host the same
command is the check docs/operations.md asks for."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from helper.gpu_check import check_gpus
from helper.runtime import DockerRuntime
from tests.fake_nvml import H200, FakeNVML
from tests.integration.harness import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def test_a_gpu_container_without_the_nvidia_runtime_fails_the_check(docker_engine, workload_image):
    check = check_gpus(FakeNVML([H200], cuda=13000), DockerRuntime(docker_engine), workload_image)
    assert not check.ok
    (failure,) = check.failures()
    assert failure.startswith(f"{H200['uuid']}: the container failed")
    # Docker's answer: no runtime for a GPU request here (another GPU's uuid on a GPU host)
    assert "device" in failure.lower()
    assert not docker_engine.containers.list(all=True, filters={"name": "seeker-gpu-check"})


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this host has a GPU driver")
def test_the_command_on_a_host_without_gpus_says_so():
    out = subprocess.run(
        [sys.executable, "-m", "helper", "gpus"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 1
    assert out.stdout.startswith("NVML: 0 GPU(s)") and "NOT OK" in out.stdout
    assert "no GPUs found" in out.stderr
