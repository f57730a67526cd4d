"""GPU placement with real helper processes and real Docker, over GPUs the
helpers declare (--test-resources @FILE: the report's own shape, so a test
can have A100s with an old driver, an H100, or a GPU with MIG instances).
Declared GPUs are not real: no device is asked of Docker, and the containers
only learn theirs from SEEKER_GPU_INDICES and SEEKER_GPU_UUIDS."""

from __future__ import annotations

import json
import signal

import pytest
import requests

from seeker.client import SeekerClient
from tests.integration.conftest import make_cluster
from tests.integration.harness import cli, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]

GiB = 1024**3
A100 = "NVIDIA A100-SXM4-40GB"
H100 = "NVIDIA H100 80GB HBM3"
SAYS_ITS_GPUS = 'echo "$SEEKER_HELPER_NAME $SEEKER_GPU_INDICES $SEEKER_GPU_UUIDS"'
# runs until cancelled, then stops at once: sh is PID 1 and ignores a bare SIGTERM
HOLDS_ITS_GPUS = SAYS_ITS_GPUS + "; trap 'exit 0' TERM; sleep 120 & wait"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, mongo_url, workload_image):
    s = make_cluster(tmp_path_factory, mongo_url, "gpu-cluster", "--liveness", "30")
    yield s
    s.stop()


@pytest.fixture
def declare(tmp_path):
    """`declare(name, *gpus)`: the --test-resources argument of a helper
    with 8 CPUs, 16 GiB and these GPU records."""

    def write(name: str, *gpus: dict) -> str:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"cpus": 8, "memory": "16g", "gpus": list(gpus)}))
        return f"@{path}"

    return write


def gpu(name: str, cuda: str, capability: str, memory: str = "40g", **fields) -> dict:
    return {
        "name": name,
        "memory_total": memory,
        "cuda_version": cuda,
        "compute_capability": capability,
        **fields,
    }


def ran(client: SeekerClient, task_id: str) -> str:
    task = client.wait(task_id, timeout=60, poll=0.1)
    assert task["state"] == "succeeded", task
    return client.results(task_id)[0]["stdout"].strip()


def cancelled_output(client: SeekerClient, task_id: str) -> str:
    """What a cancelled run printed before it was stopped."""
    client.cancel(task_id)
    found = wait_until(lambda: client.results(task_id), 60, f"the result of {task_id}")
    return found[0]["stdout"].strip()


def test_tasks_land_on_the_only_helper_whose_gpu_fits(fleet, cluster, declare, workload_image):
    add, client = fleet
    add("old-a100", declare("old-a100", gpu(A100, "12.2", "8.0")), "--slots", "4")
    add("new-a100", declare("new-a100", gpu(A100, "12.8", "8.0")), "--slots", "4")
    add("h100", declare("h100", gpu(H100, "12.8", "9.0", "80g")), "--slots", "4")
    asks = {
        "new-a100": {"gpus": 1, "gpu_model": "a100", "min_cuda": "12.4"},  # CUDA 12.2 < 12.4
        "h100": {"gpus": 1, "min_compute_capability": "9.0"},
    }
    for helper, resources in asks.items():
        task = client.submit(workload_image, ["sh", "-c", SAYS_ITS_GPUS], resources=resources)
        assert ran(client, task["task_id"]) == f"{helper} 0 TEST-GPU-0"
    big = client.submit(
        workload_image, ["sh", "-c", SAYS_ITS_GPUS], resources={"gpus": 1, "gpu_memory": "60g"}
    )
    assert ran(client, big["task_id"]) == "h100 0 TEST-GPU-0"  # 40g on the A100s
    out = cli(
        "submit",
        "--json",
        "--wait",
        "--gpus",
        "1",
        "--gpu-model",
        "H100",
        "--min-cuda",
        "12.8",
        workload_image,
        "--",
        "true",
        token=cluster.token,
        seeker_url=cluster.seeker_url,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["task"]["result"]["helper_name"] == "h100"


def test_a_task_no_helper_fits_waits_naming_why(fleet, declare, workload_image):
    add, client = fleet
    add("a100-a", declare("a100-a", gpu(A100, "12.8", "8.0")))
    add("a100-b", declare("a100-b", gpu(A100, "12.8", "8.0")))
    add("h100-old", declare("h100-old", gpu(H100, "12.2", "9.0")))
    task_id = client.submit(
        workload_image, ["true"], resources={"gpus": 1, "gpu_model": "H100", "min_cuda": "12.8"}
    )["task_id"]
    reason = wait_until(lambda: client.get(task_id)["wait_reason"], 30, "a wait reason")
    assert reason == "3 helpers: 2 no GPU model H100, 1 CUDA 12.2 < 12.8"
    assert client.get(task_id)["state"] == "pending"
    client.cancel(task_id)


def test_four_quarter_shares_run_at_once_on_one_gpu_and_a_fifth_waits(
    fleet, declare, workload_image
):
    add, client = fleet
    add("shared", declare("shared", gpu(A100, "12.4", "8.0")), "--slots", "8")
    ids = [
        client.submit(workload_image, ["sh", "-c", HOLDS_ITS_GPUS], resources={"gpus": 0.25})[
            "task_id"
        ]
        for _ in range(5)
    ]

    def four_running() -> bool:
        return [client.get(i)["state"] for i in ids].count("running") == 4

    wait_until(four_running, 60, "four shares to run at once")
    fifth = next(i for i in ids if client.get(i)["state"] == "pending")
    assert client.get(fifth)["wait_reason"] == "1 helper: 1 not enough free GPUs"
    shares = [i for i in ids if i != fifth]
    (use,) = [h["gpu_use"] for h in client.helpers() if h["name"] == "shared"]
    assert [u["taken"] for u in use] == [1.0]
    # each of the four was given the same GPU, and a share freed lets the fifth run
    assert cancelled_output(client, shares[0]) == "shared 0 TEST-GPU-0"
    wait_until(lambda: client.get(fifth)["state"] == "running", 60, "the fifth share to run")
    outputs = {cancelled_output(client, i) for i in [*shares[1:], fifth]}
    assert outputs == {"shared 0 TEST-GPU-0"}


def test_two_mig_tasks_on_one_gpu_get_distinct_instances(fleet, declare, workload_image):
    add, client = fleet
    instances = [{"profile": "3g.20gb", "memory_total": "20g"}] * 2
    add("sliced", declare("sliced", gpu(A100, "12.4", "8.0", mig=instances)), "--slots", "4")
    resources = {"gpus": 1, "gpu_model": "3g.20gb"}
    ids = [
        client.submit(workload_image, ["sh", "-c", HOLDS_ITS_GPUS], resources=resources)["task_id"]
        for _ in range(3)
    ]

    def two_running() -> bool:
        return [client.get(i)["state"] for i in ids].count("running") == 2

    wait_until(two_running, 60, "two MIG tasks to run at once")
    third = next(i for i in ids if client.get(i)["state"] == "pending")
    assert client.get(third)["wait_reason"] == "1 helper: 1 not enough free GPUs"
    client.cancel(third)
    outputs = sorted(cancelled_output(client, i) for i in ids if i != third)
    assert outputs == ["sliced 0 TEST-MIG-0-0", "sliced 0 TEST-MIG-0-1"]


def test_a_gpu_runs_container_names_its_gpu_for_the_helper_that_adopts_it(
    fleet, cluster, declare, docker_engine, workload_image
):
    add, client = fleet
    helper = add("labelled", declare("labelled", gpu(A100, "12.4", "8.0")), "--slots", "2")
    task_id = client.submit(workload_image, ["sh", "-c", HOLDS_ITS_GPUS], resources={"gpus": 0.5})[
        "task_id"
    ]
    wait_until(lambda: client.get(task_id)["state"] == "running", 60, "the GPU task to run")
    (container,) = docker_engine.containers.list(
        filters={"label": f"io.seeker.assignment={task_id}.1"}
    )
    assert json.loads(container.labels["io.seeker.devices"]) == {"TEST-GPU-0": 0.5}
    helper.stop(signal.SIGKILL)
    helper.start().wait_healthy(cluster.helper_urls["labelled"])
    wait_until(lambda: "took over 1 container" in helper.log(tail=None), 60, "the adoption")
    status = requests.get(
        f"{cluster.helper_urls['labelled']}/api/v1/status",
        headers={"Authorization": f"Bearer {cluster.token}"},
        timeout=5,
    ).json()
    # the restarted helper counts half of the GPU as held by the run it adopted
    assert [(e["task_id"], e.get("gpus")) for e in status["running"]] == [
        (task_id, {"TEST-GPU-0": 0.5})
    ]
    assert cancelled_output(client, task_id) == "labelled 0 TEST-GPU-0"
