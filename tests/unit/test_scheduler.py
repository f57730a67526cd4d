"""The scheduler's filters, scorers, select() and reserve_gpus(), over literal
HelperView and TaskView values."""

from __future__ import annotations

import pytest
from scheduler_views import GiB, gpus, helper, task

from seeker.placement.pipeline import (
    LABELS_DIFFER,
    NO_FREE_SLOT,
    NOT_ENOUGH_CPU,
    NOT_ENOUGH_GPU_MEMORY,
    NOT_ENOUGH_GPUS,
    NOT_ENOUGH_MEMORY,
    OFFLINE,
    RUNS_THIS_TASK,
    avoid_recent_failures,
    avoid_where_it_failed,
    has_cpus,
    has_free_slot,
    has_gpu_memory,
    has_gpus,
    has_memory,
    is_online,
    matches_labels,
    not_running_this_task,
    prefer_fewest_running,
    prefer_free_cpu,
    prefer_free_gpu_memory,
    prefer_free_memory,
)
from seeker.placement.views import GpuView, TaskView

# --- TaskView ------------------------------------------------------------------


def scheduling_fields(view: TaskView) -> tuple:
    return (
        view.task_id,
        view.cpus,
        view.memory,
        view.gpus,
        view.gpu_memory,
        view.constraints,
        view.placement,
        view.running_on,
        view.failed_on,
    )


def test_task_view_from_spec():
    spec = {
        "image": "busybox",
        "resources": {"cpus": 2, "memory": GiB, "gpus": 1, "gpu_memory": 8 * GiB},
        "constraints": {"zone": "a"},
        "placement": "binpack",
    }
    view = TaskView.from_spec("t1", spec, running_on=["h1"], failed_on={"h2"})
    assert scheduling_fields(view) == (
        "t1",
        2,
        GiB,
        1,
        8 * GiB,
        {"zone": "a"},
        "binpack",
        frozenset({"h1"}),
        frozenset({"h2"}),
    )


def test_task_view_from_a_bare_spec():
    view = TaskView.from_spec("t1", {"image": "busybox", "resources": None, "constraints": None})
    assert scheduling_fields(view) == scheduling_fields(TaskView("t1"))
    assert (view.cpus, view.gpus, view.constraints, view.placement) == (0, 0, {}, "spread")


# --- filters ---------------------------------------------------------------------


@pytest.mark.parametrize(("online", "expected"), [(True, None), (False, OFFLINE)])
def test_is_online(online, expected):
    assert is_online(task(), helper(online=online)) == expected


@pytest.mark.parametrize(
    ("running_on", "expected"),
    [(frozenset(), None), (frozenset({"id-other"}), None), (frozenset({"id-h"}), RUNS_THIS_TASK)],
)
def test_not_running_this_task(running_on, expected):
    assert not_running_this_task(task(running_on=running_on), helper("h")) == expected


@pytest.mark.parametrize(
    ("slots", "running", "expected"),
    [(1, 0, None), (2, 1, None), (2, 2, NO_FREE_SLOT), (1, 3, NO_FREE_SLOT)],
)
def test_has_free_slot(slots, running, expected):
    assert has_free_slot(task(), helper(slots=slots, running=running)) == expected


@pytest.mark.parametrize(
    ("constraints", "labels", "expected"),
    [
        ({}, {}, None),
        ({}, {"zone": "a"}, None),
        ({"zone": "a"}, {"zone": "a", "gpu": "a100"}, None),
        ({"zone": "a", "gpu": "a100"}, {"zone": "a", "gpu": "a100"}, None),
        ({"zone": "a"}, {"zone": "b"}, LABELS_DIFFER),
        ({"zone": "a"}, {}, LABELS_DIFFER),
        ({"zone": "a", "gpu": "a100"}, {"zone": "a"}, LABELS_DIFFER),
        ({"zone": "A"}, {"zone": "a"}, LABELS_DIFFER),
    ],
)
def test_matches_labels(constraints, labels, expected):
    assert matches_labels(task(constraints=constraints), helper(labels=labels)) == expected


@pytest.mark.parametrize(
    ("need", "free", "expected"),
    [(0, 0, None), (4, 8, None), (8, 8, None), (8.5, 8, NOT_ENOUGH_CPU), (1, 0, NOT_ENOUGH_CPU)],
)
def test_has_cpus(need, free, expected):
    assert has_cpus(task(cpus=need), helper(cpus_total=8, cpus_free=free)) == expected


@pytest.mark.parametrize(
    ("need", "free", "expected"),
    [
        (0, 0, None),
        (GiB, 2 * GiB, None),
        (2 * GiB, 2 * GiB, None),
        (2 * GiB + 1, 2 * GiB, NOT_ENOUGH_MEMORY),
        (1, 0, NOT_ENOUGH_MEMORY),
    ],
)
def test_has_memory(need, free, expected):
    assert has_memory(task(memory=need), helper(memory_free=free)) == expected


@pytest.mark.parametrize(
    ("need", "free", "expected"),
    [
        (0, (), None),
        (1, gpus(16), None),
        (2, gpus(16, 1), None),
        (2, gpus(16), NOT_ENOUGH_GPUS),
        (1, (), NOT_ENOUGH_GPUS),
    ],
)
def test_has_gpus(need, free, expected):
    assert has_gpus(task(gpus=need), helper(gpus_free=free, gpus_total=4)) == expected


@pytest.mark.parametrize(
    ("need", "per_gpu_gib", "free", "expected"),
    [
        (2, 8, gpus(16, 8), None),
        (2, 8, gpus(16, 4), NOT_ENOUGH_GPU_MEMORY),
        (1, 8, gpus(4, 9), None),
        (1, 8, gpus(4, 7.9), NOT_ENOUGH_GPU_MEMORY),
        (2, 8, gpus(16), NOT_ENOUGH_GPU_MEMORY),  # has_gpus rejects this first in select()
        (0, 8, (), None),  # memory without GPUs: ignored
        (1, 0, gpus(0), None),  # no memory asked for
    ],
)
def test_has_gpu_memory(need, per_gpu_gib, free, expected):
    t = task(gpus=need, gpu_memory=per_gpu_gib * GiB)
    assert has_gpu_memory(t, helper(gpus_free=free, gpus_total=2)) == expected


# --- scorers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("need", "free", "total", "expected"),
    [
        (2, 8, 8, 0.75),
        (0, 4, 8, 0.5),
        (0, 8, 8, 1.0),
        (8, 8, 8, 0.0),
        (9, 8, 8, 0.0),  # never below 0
        (0, 0, 0, 0.0),  # a helper that reported no CPUs
    ],
)
def test_prefer_free_cpu(need, free, total, expected):
    score = prefer_free_cpu(task(cpus=need), helper(cpus_total=total, cpus_free=free))
    assert score == pytest.approx(expected)


@pytest.mark.parametrize(
    ("need", "free", "total", "expected"),
    [
        (0, 8 * GiB, 8 * GiB, 1.0),
        (2 * GiB, 8 * GiB, 8 * GiB, 0.75),
        (2 * GiB, 4 * GiB, 8 * GiB, 0.25),
        (16 * GiB, 8 * GiB, 8 * GiB, 0.0),
        (GiB, 0, 0, 0.0),
    ],
)
def test_prefer_free_memory(need, free, total, expected):
    score = prefer_free_memory(task(memory=need), helper(memory_total=total, memory_free=free))
    assert score == pytest.approx(expected)


@pytest.mark.parametrize(
    ("need", "free", "total", "expected"),
    [
        (0, (), 0, 1.0),  # CPU work on a CPU host
        (0, gpus(16, 16), 2, 1.0),  # no GPUs asked for: the same everywhere
        (1, gpus(4, 12), 2, 0.75),  # the GPU it would get: the one with most free
        (2, gpus(4, 12, 8), 3, 0.625),  # the best two: (12/16 + 8/16) / 2
        (2, gpus(4, 12), 2, 0.5),
        (1, (), 2, 0.0),
        (1, (GpuView(0, GiB, 0),), 1, 0.0),  # size unknown
    ],
)
def test_prefer_free_gpu_memory(need, free, total, expected):
    h = helper(gpus_free=free, gpus_total=total)
    assert prefer_free_gpu_memory(task(gpus=need), h) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("slots", "running", "expected"),
    [
        (1, 0, 1.0),
        (1, 1, 0.0),
        (4, 0, 0.75),  # slots free after placing the task
        (4, 1, 0.5),
        (4, 3, 0.0),
        (2, 5, 0.0),
    ],
)
def test_prefer_fewest_running(slots, running, expected):
    score = prefer_fewest_running(task(), helper(slots=slots, running=running))
    assert score == pytest.approx(expected)


@pytest.mark.parametrize(("failures", "expected"), [(0, 1.0), (1, 0.5), (3, 0.25)])
def test_avoid_recent_failures(failures, expected):
    assert avoid_recent_failures(task(), helper(failures=failures)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("failed_on", "expected"),
    [(frozenset(), 1.0), (frozenset({"id-other"}), 1.0), (frozenset({"id-h"}), 0.0)],
)
def test_avoid_where_it_failed(failed_on, expected):
    assert avoid_where_it_failed(task(failed_on=failed_on), helper("h")) == expected
