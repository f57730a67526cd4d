"""A task's GPU requests from the submit to the container: the schema (whole
GPUs, a share, GPU model, CUDA, compute capability), the seeker placing them
over registered helpers (what it pushes, what it records, what it says when
nothing fits, what `GET /helpers` and `seeker helpers` show), and the helper
handing the container its devices."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from docker.types import DeviceRequest
from test_executor import FakeRuntime, assignment, make

from helper.runs import RunSpec
from helper.runtime import DockerRuntime
from seeker.api.app import create_app
from seeker.cli import commands
from seeker.cli.tables import helpers_table
from seeker.control.dispatcher import Dispatcher
from seeker.control.operations import Seeker
from seeker.models import Resources
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore

GiB = 1024**3
AUTH = {"Authorization": "Bearer t"}


# --- the schema -----------------------------------------------------------------------


@pytest.mark.parametrize("asked, kept", [(2, 2), (2.0, 2), (0.5, 0.5), (0.25, 0.25), ("1", 1)])
def test_gpus_are_whole_or_a_share_of_one(asked, kept):
    gpus = Resources(gpus=asked).gpus
    assert gpus == kept and type(gpus) is type(kept)


@pytest.mark.parametrize(
    "resources, says",
    [
        ({"gpus": 1.5}, "neither a whole number of GPUs nor a share of one GPU below 1"),
        ({"gpus": "two"}, "is not a number of GPUs"),
        ({"gpu_model": "H100"}, "gpu_model needs gpus"),
        ({"min_cuda": "12.4", "min_compute_capability": "8.0"}, "need gpus"),
        ({"gpus": 1, "min_cuda": "12.x"}, "should match pattern"),
        ({"gpus": 1, "gpu_model": ""}, "at least 1 character"),
    ],
)
def test_bad_gpu_requests_are_refused_saying_why(resources, says):
    with pytest.raises(ValueError, match=says):
        Resources(**resources)


# --- the seeker -----------------------------------------------------------------------

A100 = "NVIDIA A100-SXM4-80GB"


def gpu(index, name=A100, cuda="12.4", cc="8.0", **fields) -> dict:
    return {
        "index": index,
        "name": name,
        "uuid": f"GPU-{index}",
        "memory_total": 80 * GiB,
        "memory_free": 80 * GiB,
        "compute_capability": cc,
        "cuda_version": cuda,
        **fields,
    }


class Seeker_:
    """The seeker's API and dispatcher over mongomock, pushing nowhere."""

    def __init__(self, db, clock):
        tasks, helpers = TaskStore(db), HelperStore(db)
        tasks.ensure_indexes()
        helpers.ensure_indexes()
        self.pushed: list[dict] = []
        seeker = Seeker(tasks, helpers, clock=clock, kick=lambda: None)
        self.client = create_app(seeker=seeker, token="t").test_client()
        self.dispatcher = Dispatcher(
            tasks, helpers, push=lambda h, a: self.pushed.append(a), clock=clock
        )

    def post(self, path, payload):
        return self.client.post(f"/api/v1{path}", json=payload, headers=AUTH)

    def get(self, path):
        return self.client.get(f"/api/v1{path}", headers=AUTH).get_json()

    def register(self, name, gpus, slots=8):
        body = {
            "helper_id": f"id-{name}",
            "name": name,
            "url": f"http://{name}:7072",
            "slots": slots,
            "resources": {"cpus": 8, "memory_total": 64 * GiB, "gpus": gpus},
        }
        assert self.post("/helpers", body).status_code == 200

    def submit(self, **resources) -> str:
        resp = self.post("/tasks", {"image": "busybox:1.36", "resources": resources})
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()["task_id"]


@pytest.fixture
def seeker(mock_db, clock) -> Seeker_:
    return Seeker_(mock_db, clock)


def test_a_share_is_422_when_above_one_and_kept_as_asked_otherwise(seeker):
    resp = seeker.post("/tasks", {"image": "busybox", "resources": {"gpus": 1.5}})
    assert resp.status_code == 422
    assert [d["field"] for d in resp.get_json()["detail"]] == ["resources.gpus"]
    task_id = seeker.submit(gpus=0.5, gpu_model="A100", min_cuda="12.4")
    resources = seeker.get(f"/tasks/{task_id}")["resources"]
    assert (resources["gpus"], resources["gpu_model"], resources["min_cuda"]) == (
        0.5,
        "A100",
        "12.4",
    )


def test_four_quarter_shares_go_to_one_gpu_and_a_fifth_waits(seeker):
    seeker.register("one-gpu", [gpu(0)])
    ids = [seeker.submit(gpus=0.25) for _ in range(5)]
    assert seeker.dispatcher.dispatch_pending() == 4
    assert [p["gpu_uuids"] for p in seeker.pushed] == [["GPU-0"]] * 4  # the same device for each
    assert [p["resources"]["gpus"] for p in seeker.pushed] == [0.25] * 4
    waiting = seeker.get(f"/tasks/{ids[4]}")
    assert (waiting["state"], waiting["wait_reason"]) == (
        "pending",
        "1 helper: 1 not enough free GPUs",
    )
    (placed,) = seeker.get(f"/tasks/{ids[0]}")["assignments"]
    assert placed["reservation"]["gpu_devices"] == [
        {"index": 0, "uuid": "GPU-0", "name": A100, "profile": "", "share": 0.25, "memory": 0}
    ]
    (listed,) = seeker.get("/helpers")["helpers"]
    assert listed["gpu_use"] == [
        {"index": 0, "uuid": "GPU-0", "profile": "", "taken": 1.0, "memory_reserved": 0}
    ]


def test_a_task_lands_on_the_only_helper_whose_gpu_fits_or_waits_naming_why(seeker):
    seeker.register("old-driver", [gpu(0, cuda="12.2")])
    seeker.register("l4", [gpu(0, name="NVIDIA L4", cuda="12.8", cc="8.9")])
    seeker.register("new-driver", [gpu(0, cuda="12.8")])
    fits = seeker.submit(gpus=1, gpu_model="a100", min_cuda="12.4")
    hopper = seeker.submit(gpus=1, min_compute_capability="9.0")
    seeker.dispatcher.dispatch_pending()
    assert [p["helper_id"] for p in seeker.pushed] == ["id-new-driver"]
    assert seeker.pushed[0]["task_id"] == fits
    assert seeker.get(f"/tasks/{hopper}")["wait_reason"] == (
        "3 helpers: 2 compute capability 8.0 < 9.0, 1 compute capability 8.9 < 9.0"
    )


def test_two_mig_tasks_on_one_gpu_are_given_distinct_instances(seeker):
    instances = [
        {"uuid": "MIG-a", "profile": "3g.40gb", "memory_total": 40 * GiB},
        {"uuid": "MIG-b", "profile": "3g.40gb", "memory_total": 40 * GiB},
    ]
    seeker.register("sliced", [gpu(0, mig=instances)])
    for _ in range(3):
        seeker.submit(gpus=1, gpu_model="3g.40gb")
    assert seeker.dispatcher.dispatch_pending() == 2
    assert sorted(p["gpu_uuids"][0] for p in seeker.pushed) == ["MIG-a", "MIG-b"]
    assert [p["gpu_indices"] for p in seeker.pushed] == [[0], [0]]
    (listed,) = seeker.get("/helpers")["helpers"]
    assert [(u["uuid"], u["taken"]) for u in listed["gpu_use"]] == [("MIG-a", 1.0), ("MIG-b", 1.0)]


# --- seeker submit and seeker helpers ---------------------------------------------------


class Captured:
    def __init__(self):
        self.spec: dict = {}

    def submit(self, image, command, **spec):
        self.spec = spec
        return {"task_id": "t1"}


@pytest.mark.parametrize("gpus, sent", [("0.5", 0.5), ("2", 2)])
def test_seeker_submit_passes_the_gpu_options(monkeypatch, gpus, sent):
    captured = Captured()
    monkeypatch.setattr(commands, "connect", lambda *args: captured)
    result = CliRunner().invoke(
        commands.main,
        ["submit", "--token", "t", "--gpus", gpus, "--gpu-model", "H100"]
        + ["--min-cuda", "12.4", "--min-compute-capability", "9.0", "busybox", "--", "true"],
    )
    assert result.exit_code == 0, result.output
    assert captured.spec["resources"] == {
        "gpus": sent,
        "gpu_model": "H100",
        "min_cuda": "12.4",
        "min_compute_capability": "9.0",
    }
    assert type(captured.spec["resources"]["gpus"]) is type(sent)


def test_seeker_helpers_shows_each_gpus_model_cuda_and_how_much_is_taken():
    instances = [
        {"uuid": "MIG-a", "profile": "3g.40gb", "memory_total": 40 * GiB, "memory_free": None},
        {"uuid": "MIG-b", "profile": "3g.40gb", "memory_total": 40 * GiB, "memory_free": None},
    ]
    use = [
        {"index": 0, "uuid": "GPU-0", "taken": 0.5},
        {"index": 1, "uuid": "MIG-a", "taken": 1.0},
        {"index": 1, "uuid": "MIG-b", "taken": 0},
    ]
    out = helpers_table(
        [
            {
                "name": "gpu-1",
                "url": "http://gpu-1:7072",
                "slots": 4,
                "resources": {"gpus": [gpu(0), gpu(1, mig=instances)]},
                "gpu_use": use,
            }
        ]
    )
    lines = out.splitlines()
    assert lines[2].split()[:8] == [
        "gpu",
        "0",
        "NVIDIA",
        "A100-SXM4-80GB",
        "CUDA",
        "12.4,",
        "cc",
        "8.0",
    ]
    assert "0.5 taken" in lines[2] and "0B used/80.0GiB" in lines[2]
    assert "MIG" in lines[3]
    assert lines[4].split()[:4] == ["mig", "3g.40gb", "MIG-a", "taken"]
    assert lines[5].split()[:4] == ["mig", "3g.40gb", "MIG-b", "free"]


# --- the helper -----------------------------------------------------------------------


def test_the_container_learns_its_gpu_indices_and_uuids():
    runtime = FakeRuntime()
    ex, box = make(runtime, declared_gpus=True)
    ex.submit(assignment(resources={"gpus": 0.5}, gpu_indices=[1], gpu_uuids=["MIG-b"]))
    assert box.finished.wait(10)
    (spec,) = runtime.specs
    assert (spec.gpu_indices, spec.gpu_uuids) == ([1], ["MIG-b"])
    assert (spec.env["SEEKER_GPU_INDICES"], spec.env["SEEKER_GPU_UUIDS"]) == ("1", "MIG-b")


def test_docker_is_asked_for_exactly_the_devices_by_uuid():
    runtime = DockerRuntime(client=object())  # building the arguments needs no engine
    spec = RunSpec("c", "busybox", [], {}, gpu_indices=[0, 0], gpu_uuids=["MIG-a", "MIG-b"])
    assert runtime._create_args(spec)["device_requests"] == [
        DeviceRequest(device_ids=["MIG-a", "MIG-b"], capabilities=[["gpu"]])
    ]
    by_index = RunSpec("c", "busybox", [], {}, gpu_indices=[2, 3])
    assert runtime._create_args(by_index)["device_requests"][0]["DeviceIDs"] == ["2", "3"]
    declared = RunSpec("c", "busybox", [], {}, gpu_indices=[0], gpu_uuids=["TEST-GPU-0"])
    declared.declared_gpus = True
    assert "device_requests" not in runtime._create_args(declared)
