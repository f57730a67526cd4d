"""GPU placement over literal helpers: the GPU model, CUDA and compute
capability filters with their reasons, shares of a GPU (0 < gpus < 1), MIG
instances as devices, what an assignment reserves and what capacity is left."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from scheduler_views import GiB, helper, task

from seeker.placement import select
from seeker.placement.capacity import after_placing, view_of
from seeker.placement.fast_path import handles
from seeker.placement.gpus import (
    NOT_ENOUGH_GPU_MEMORY,
    NOT_ENOUGH_GPUS,
    after_reservations,
    at_least,
    device_use,
    devices_of,
    has_compute_capability,
    has_cuda,
    has_gpu_model,
    has_gpus,
    reservation_for,
    reserve_devices,
    version,
)
from seeker.placement.pipeline import FILTERS, SCORERS, select_by_pipeline
from seeker.placement.views import GpuView

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
LIVENESS = timedelta(seconds=45)
A100 = "NVIDIA A100-SXM4-80GB"
H100 = "NVIDIA H100 80GB HBM3"
L4 = "NVIDIA L4"


def device(index=0, name=A100, cuda="12.4", cc="8.0", total=80, free=None, **fields) -> GpuView:
    """One whole GPU (sizes in GiB), uuid GPU-<index> unless given."""
    return GpuView(
        index,
        int((total if free is None else free) * GiB),
        int(total * GiB),
        uuid=fields.pop("uuid", f"GPU-{index}"),
        name=name,
        cuda_version=cuda,
        compute_capability=cc,
        **fields,
    )


def box(name, *devices: GpuView, **fields):
    """A helper with these GPUs and 8 slots."""
    fields = {"slots": 8, **fields}
    return helper(name, gpus_free=tuple(devices), gpus_total=len(devices), **fields)


def mig(index, n, profile="3g.40gb", total=40, name=A100, **fields) -> GpuView:
    return device(index, name, total=total, uuid=f"MIG-{index}-{n}", profile=profile, **fields)


# --- versions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "have, want, ok",
    [
        ("12.4", "12.4", True),
        ("12.10", "12.4", True),  # as versions, not as strings
        ("12.2", "12.10", False),
        ("12", "12.0", True),
        ("11.8", "12", False),
        ("9.0", "8.9", True),
        ("", "12.4", False),  # unknown: not at least anything
        ("bogus", "1.0", False),
    ],
)
def test_versions_compare_as_versions(have, want, ok):
    assert at_least(have, want) is ok


def test_version_pads_and_refuses_what_is_not_one():
    assert version("12.4") == (12, 4, 0) and version("535.104.05") == (535, 104, 5)
    assert version("12.x") is None and version(None) is None


# --- the filters and their reasons --------------------------------------------------


def test_gpu_model_matches_a_part_of_the_name_or_the_mig_profile_in_any_case():
    hopper, ampere = box("hopper", device(0, H100)), box("ampere", device(0, A100))
    sliced = box("sliced", mig(0, 0, "3g.40gb"), mig(0, 1, "1g.10gb"))
    assert has_gpu_model(task(gpus=1, gpu_model="h100"), hopper) is None
    assert has_gpu_model(task(gpus=1, gpu_model="A100-SXM4-80GB"), ampere) is None
    assert has_gpu_model(task(gpus=1, gpu_model="3G.40GB"), sliced) is None
    assert has_gpu_model(task(gpus=1, gpu_model="H100"), ampere) == "no GPU model H100"
    assert has_gpu_model(task(gpus=1, gpu_model="H100"), helper("cpu")) == "no GPU model H100"
    assert has_gpu_model(task(gpus=1), ampere) is None  # none asked


def test_the_model_filter_sees_gpus_that_are_taken():
    busy = helper("busy", gpus_taken=(device(0, H100),), gpus_total=1)
    t = task(gpus=1, gpu_model="H100")
    assert has_gpu_model(t, busy) is None and has_gpus(t, busy) == NOT_ENOUGH_GPUS


def test_cuda_names_the_best_version_there_and_the_one_asked():
    old = box("old", device(0, cuda="12.2"), device(1, cuda="12.1"))
    assert has_cuda(task(gpus=1, min_cuda="12.8"), old) == "CUDA 12.2 < 12.8"
    assert has_cuda(task(gpus=1, min_cuda="12.2"), old) is None
    assert has_cuda(task(gpus=1, min_cuda="12.4"), box("?", device(0, cuda=""))) == (
        "CUDA unknown < 12.4"
    )
    assert has_cuda(task(gpus=1, min_cuda="12.4"), helper("cpu")) is None  # has_gpus says it


def test_cuda_is_checked_on_the_gpus_of_the_model_asked():
    mixed = box("mixed", device(0, L4, cuda="12.8"), device(1, A100, cuda="12.2"))
    assert has_cuda(task(gpus=1, min_cuda="12.4"), mixed) is None
    t = task(gpus=1, gpu_model="A100", min_cuda="12.4")
    assert has_cuda(t, mixed) == "CUDA 12.2 < 12.4"


def test_compute_capability_compares_as_a_version():
    turing = box("turing", device(0, cc="7.5"))
    assert has_compute_capability(task(gpus=1, min_compute_capability="8.0"), turing) == (
        "compute capability 7.5 < 8.0"
    )
    hopper = box("hopper", device(0, H100, cc="9.0"))
    assert has_compute_capability(task(gpus=1, min_compute_capability="8.6"), hopper) is None


def test_a_task_no_helper_fits_waits_naming_each_reason():
    helpers = [
        box("a", device(0, H100, cuda="12.2")),
        box("b", device(0, H100, cuda="12.2")),
        box("c", device(0, A100, cuda="12.8")),
    ]
    t = task(gpus=1, gpu_model="H100", min_cuda="12.8")
    assert select(t, helpers).wait_reason() == "3 helpers: 2 CUDA 12.2 < 12.8, 1 no GPU model H100"


def test_tasks_land_only_where_model_cuda_and_capability_all_fit():
    helpers = [
        box("l4", device(0, L4, cuda="12.8", cc="8.9")),
        box("old-a100", device(0, A100, cuda="12.2", cc="8.0")),
        box("new-a100", device(0, A100, cuda="12.8", cc="8.0")),
        box("h100", device(0, H100, cuda="12.8", cc="9.0")),
    ]
    by_model = task(gpus=1, gpu_model="A100", min_cuda="12.4")
    assert [c.helper.name for c in select(by_model, helpers).candidates] == ["new-a100"]
    by_capability = task(gpus=1, min_compute_capability="8.9")
    assert {c.helper.name for c in select(by_capability, helpers).candidates} == {"l4", "h100"}


def test_tasks_with_gpu_filters_or_shares_go_through_the_pipeline():
    assert handles(task(gpus=2), FILTERS, SCORERS)
    for t in (
        task(gpus=0.5),
        task(gpus=1, gpu_model="H100"),
        task(gpus=1, min_cuda="12.4"),
        task(gpus=1, min_compute_capability="8.0"),
    ):
        assert not handles(t, FILTERS, SCORERS)
        helpers = [box("a", device(0, H100)), box("b", device(0))]
        assert select(t, helpers).explain() == select_by_pipeline(t, helpers).explain()


# --- shares of a GPU ------------------------------------------------------------------


def test_shares_on_one_gpu_never_add_up_past_one():
    view = box("one", device(0))
    for _ in range(4):
        t = task(gpus=0.25)
        assert has_gpus(t, view) is None
        view = after_placing(view, reservation_for(t, view))
    assert has_gpus(task(gpus=0.25), view) == NOT_ENOUGH_GPUS
    assert view.gpus_free == () and view.gpus_taken[0].share_free == 0


def test_a_share_does_not_fit_a_gpu_held_whole_and_whole_does_not_fit_a_shared_one():
    view = box("two", device(0), device(1))
    view = after_placing(view, reservation_for(task(gpus=0.5), view))
    assert has_gpus(task(gpus=2), view) == NOT_ENOUGH_GPUS  # one of them is shared now
    assert has_gpus(task(gpus=1), view) is None
    view = after_placing(view, reservation_for(task(gpus=1), view))
    assert has_gpus(task(gpus=0.75), view) == NOT_ENOUGH_GPUS
    assert has_gpus(task(gpus=0.5), view) is None  # the other half of the shared one


def test_shares_pack_onto_the_fullest_gpu_they_fit():
    view = box("two", device(0), device(1, share_free=0.5))
    assert [d.index for d in reserve_devices(task(gpus=0.5), view)] == [1]
    assert [d.index for d in reserve_devices(task(gpus=0.75), view)] == [0]


def test_a_share_with_gpu_memory_reserves_it_on_its_gpu():
    view = box("one", device(0, total=80))
    t = task(gpus=0.25, gpu_memory=30 * GiB)
    view = after_placing(view, reservation_for(t, view))
    view = after_placing(view, reservation_for(t, view))
    (gpu,) = view.gpus_free
    assert (gpu.share_free, gpu.memory_reserved, gpu.memory_available) == (0.5, 60 * GiB, 20 * GiB)
    assert select(t, [view]).rejected == {"one": NOT_ENOUGH_GPU_MEMORY}
    assert select(task(gpus=0.25, gpu_memory=20 * GiB), [view]).candidates


def test_memory_in_use_by_the_shares_is_not_counted_twice():
    # the report already shows what the running shares use: the smaller of the two counts
    used = GpuView(0, 50 * GiB, 80 * GiB, uuid="GPU-0", share_free=0.5, memory_reserved=30 * GiB)
    assert used.memory_available == 50 * GiB
    foreign = GpuView(0, 10 * GiB, 80 * GiB, uuid="GPU-0", share_free=0.5, memory_reserved=30 * GiB)
    assert foreign.memory_available == 10 * GiB


def test_a_reservation_says_which_device_what_share_and_what_memory():
    t = task(cpus=1, memory=GiB, gpus=0.5, gpu_memory=8 * GiB)
    assert reservation_for(t, box("one", device(3))) == {
        "cpus": 1,
        "memory": GiB,
        "gpus": 0.5,
        "gpu_indices": [3],
        "gpu_uuids": ["GPU-3"],
        "gpu_devices": [
            {
                "index": 3,
                "uuid": "GPU-3",
                "name": A100,
                "profile": "",
                "share": 0.5,
                "memory": 8 * GiB,
            }
        ],
    }
    assert reservation_for(task(cpus=1), box("one", device(3))) == {
        "cpus": 1,
        "memory": 0,
        "gpus": 0,
        "gpu_indices": [],
    }


# --- MIG instances --------------------------------------------------------------------


def test_two_mig_tasks_on_one_gpu_get_distinct_instances():
    view = box("sliced", mig(0, 0), mig(0, 1))
    t = task(gpus=1, gpu_model="3g.40gb")
    first = reservation_for(t, view)
    view = after_placing(view, first)
    second = reservation_for(t, view)
    assert first["gpu_uuids"] != second["gpu_uuids"]
    assert sorted(first["gpu_uuids"] + second["gpu_uuids"]) == ["MIG-0-0", "MIG-0-1"]
    assert first["gpu_indices"] == second["gpu_indices"] == [0]
    assert has_gpus(t, after_placing(view, second)) == NOT_ENOUGH_GPUS


def test_mig_instances_are_the_devices_of_a_gpu_with_mig_on():
    report = [
        {
            "index": 0,
            "name": A100,
            "uuid": "GPU-0",
            "memory_total": 80 * GiB,
            "cuda_version": "12.4",
        },
        {
            "index": 1,
            "name": A100,
            "uuid": "GPU-1",
            "memory_total": 80 * GiB,
            "compute_capability": "8.0",
            "mig": [
                {"uuid": "MIG-a", "profile": "3g.40gb", "memory_total": 40 * GiB},
                {"uuid": "MIG-b", "profile": "3g.40gb", "memory_total": 40 * GiB, "memory_free": 0},
            ],
        },
    ]
    devices = devices_of(report)
    assert [(d.index, d.uuid, d.profile) for d in devices] == [
        (0, "GPU-0", ""),
        (1, "MIG-a", "3g.40gb"),
        (1, "MIG-b", "3g.40gb"),
    ]
    assert devices[1].memory_free == 40 * GiB  # not reported: all of it
    assert devices[2].memory_free == 0 and devices[2].compute_capability == "8.0"


# --- capacity from the assignments' reservations -----------------------------------------


def test_capacity_adds_up_the_shares_and_memory_of_every_live_reservation():
    doc = {
        "helper_id": "h1",
        "name": "gpu-1",
        "slots": 8,
        "last_seen": NOW,
        "resources": {
            "cpus": 8,
            "memory_total": 32 * GiB,
            "gpus": [
                {"index": 0, "uuid": "GPU-0", "memory_total": 80 * GiB, "memory_free": 80 * GiB},
                {"index": 1, "uuid": "GPU-1", "memory_total": 80 * GiB, "memory_free": 80 * GiB},
            ],
        },
    }
    share = {"index": 0, "uuid": "GPU-0", "share": 0.25, "memory": 10 * GiB}
    live = [
        {"gpus": 0.25, "gpu_indices": [0], "gpu_devices": [share]},
        {"gpus": 0.25, "gpu_indices": [0], "gpu_devices": [share]},
        {"gpus": 1, "gpu_indices": [1]},  # as written before shares: the whole GPU
    ]
    view = view_of(doc, live, NOW, LIVENESS)
    (gpu0,) = view.gpus_free
    assert (gpu0.uuid, gpu0.share_free, gpu0.memory_reserved) == ("GPU-0", 0.5, 20 * GiB)
    assert [g.uuid for g in view.gpus_taken] == ["GPU-1"] and view.gpus_total == 2
    assert [u["taken"] for u in device_use(doc["resources"]["gpus"], live)] == [0.5, 1.0]


def test_reservations_name_devices_without_a_uuid_by_index():
    devices = [GpuView(0, 16 * GiB, 16 * GiB), GpuView(1, 16 * GiB, 16 * GiB)]
    reservation = reservation_for(task(gpus=0.5), box("plain", *devices))
    assert reservation["gpu_uuids"] == []  # nothing to ask Docker for by uuid
    free, taken = after_reservations(devices, [reservation, reservation])
    assert [d.index for d in free] == [1] and [d.index for d in taken] == [0]
