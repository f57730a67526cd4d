"""The scheduler's filters, scorers, select() and reserve_gpus(), over literal
HelperView and TaskView values."""

from __future__ import annotations

import pytest

from seeker.scheduler import (
    LABELS_DIFFER,
    NO_FREE_SLOT,
    NOT_ENOUGH_CPU,
    NOT_ENOUGH_GPU_MEMORY,
    NOT_ENOUGH_GPUS,
    NOT_ENOUGH_MEMORY,
    OFFLINE,
    RUNS_THIS_TASK,
    GpuView,
    HelperView,
    Selection,
    TaskView,
    avoid_recent_failures,
    avoid_where_it_failed,
    has_cpus,
    has_free_slot,
    has_gpu_memory,
    has_gpus,
    has_memory,
    is_online,
    keep_gpu_hosts_for_gpu_work,
    matches_labels,
    not_running_this_task,
    prefer_fewest_running,
    prefer_free_cpu,
    prefer_free_gpu_memory,
    prefer_free_memory,
    reserve_gpus,
    select,
)

GiB = 1024**3


def helper(name="h", **fields) -> HelperView:
    defaults = {"cpus_total": 8, "cpus_free": 8, "memory_total": 16 * GiB}
    defaults["memory_free"] = fields.get("memory_total", defaults["memory_total"])
    return HelperView(f"id-{name}", name, **{**defaults, **fields})


def task(task_id="t1", **fields) -> TaskView:
    return TaskView(task_id, **fields)


def gpu(index: int, free_gib: float, total_gib: float = 16) -> GpuView:
    return GpuView(index, int(free_gib * GiB), int(total_gib * GiB))


def gpus(*free_gib: float) -> tuple[GpuView, ...]:
    """GPUs 0, 1, ... of 16 GiB with that much free memory each."""
    return tuple(gpu(i, f) for i, f in enumerate(free_gib))


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


# --- select() ------------------------------------------------------------------------

# A 2-CPU, 4 GiB task; "roomy" has everything free, "busy" half of it.
WORK = {"cpus": 2, "memory": 4 * GiB}
ROOMY = helper("roomy", slots=4, running=0)
BUSY = helper("busy", slots=4, running=2, cpus_free=4, memory_free=8 * GiB)


def test_select_ranks_by_weighted_score_and_keeps_the_breakdown():
    sel = select(task(**WORK), [BUSY, ROOMY])
    assert [c.helper.name for c in sel.candidates] == ["roomy", "busy"]
    roomy, busy = sel.candidates
    assert roomy.scores == {
        "prefer_free_gpu_memory": 1.0,
        "prefer_free_cpu": 0.75,
        "prefer_free_memory": 0.75,
        "prefer_fewest_running": 0.75,
        "keep_gpu_hosts_for_gpu_work": 1.0,
        "avoid_recent_failures": 1.0,
        "avoid_where_it_failed": 1.0,
    }
    # weights 2, 1, 1, 1, 1, 1, 4
    assert roomy.score == pytest.approx((2 + 0.75 * 3 + 1 + 1 + 4) / 11)
    assert busy.scores["prefer_free_cpu"] == pytest.approx(0.25)
    assert busy.score == pytest.approx((2 + 0.25 * 3 + 1 + 1 + 4) / 11)
    assert sel.rejected == {}


def test_binpack_inverts_the_packing_scores_and_prefers_the_fuller_helper():
    sel = select(task(placement="binpack", **WORK), [ROOMY, BUSY])
    assert [c.helper.name for c in sel.candidates] == ["busy", "roomy"]
    busy, roomy = sel.candidates
    assert busy.scores == {
        "prefer_free_gpu_memory": 0.0,
        "prefer_free_cpu": 0.75,
        "prefer_free_memory": 0.75,
        "prefer_fewest_running": 0.75,
        "keep_gpu_hosts_for_gpu_work": 1.0,  # not a packing score: never inverted
        "avoid_recent_failures": 1.0,
        "avoid_where_it_failed": 1.0,
    }
    assert busy.score == pytest.approx((0.75 * 3 + 1 + 1 + 4) / 11)
    assert roomy.score == pytest.approx((0.25 * 3 + 1 + 1 + 4) / 11)


def test_keep_gpu_hosts_for_gpu_work():
    gpu_host = helper("gpu-host", gpus_free=gpus(16), gpus_total=1)
    assert keep_gpu_hosts_for_gpu_work(task(), gpu_host) == 0.0
    assert keep_gpu_hosts_for_gpu_work(task(gpus=1), gpu_host) == 1.0
    assert keep_gpu_hosts_for_gpu_work(task(), helper("cpu-host")) == 1.0


def test_binpack_still_avoids_failures():
    flaky = helper("flaky", slots=4, running=2, cpus_free=4, memory_free=8 * GiB, failures=3)
    failed_here = helper("failed-here", slots=4, running=2, cpus_free=4, memory_free=8 * GiB)
    t = task(placement="binpack", failed_on=frozenset({"id-failed-here"}), **WORK)
    sel = select(t, [failed_here, flaky, ROOMY])
    assert [c.helper.name for c in sel.candidates] == ["flaky", "roomy", "failed-here"]


def test_spread_keeps_gpu_hosts_for_gpu_work():
    cpu_host = helper("cpu-host")
    gpu_host = helper("gpu-host", gpus_free=gpus(16), gpus_total=1)
    sel = select(task(**WORK), [gpu_host, cpu_host])
    assert [c.helper.name for c in sel.candidates] == ["cpu-host", "gpu-host"]


def test_binpack_keeps_gpu_hosts_for_gpu_work():
    cpu_host = helper("cpu-host")
    gpu_host = helper("gpu-host", gpus_free=gpus(16), gpus_total=1)
    sel = select(task(placement="binpack", **WORK), [gpu_host, cpu_host])
    assert [c.helper.name for c in sel.candidates] == ["cpu-host", "gpu-host"]


def test_gpu_work_goes_where_its_gpus_have_most_free_memory():
    nearly_full = helper("nearly-full", gpus_free=gpus(2, 3), gpus_total=2)
    free = helper("free", gpus_free=gpus(16, 16), gpus_total=2)
    sel = select(task(gpus=1), [nearly_full, free])
    assert [c.helper.name for c in sel.candidates] == ["free", "nearly-full"]


def test_a_failure_elsewhere_moves_a_retry_to_another_helper():
    sel = select(task(failed_on=frozenset({"id-roomy"}), **WORK), [ROOMY, BUSY])
    assert [c.helper.name for c in sel.candidates] == ["busy", "roomy"]
    assert sel.candidates[1].scores["avoid_where_it_failed"] == 0.0


def test_select_keeps_the_first_failing_filters_reason():
    helpers = [
        helper("gone", online=False, slots=1, running=1),  # offline and full: offline
        helper("full", slots=1, running=1, cpus_free=1),  # full and small: no slot
        helper("small", cpus_free=1),
        helper("zone-b", labels={"zone": "b"}),
        helper("ok", labels={"zone": "a"}),
    ]
    sel = select(task(cpus=4, constraints={"zone": "a"}), helpers)
    assert sel.rejected == {
        "gone": OFFLINE,
        "full": NO_FREE_SLOT,
        "small": LABELS_DIFFER,
        "zone-b": LABELS_DIFFER,
    }
    assert [c.helper.name for c in sel.candidates] == ["ok"]


def test_select_rejects_a_helper_already_running_the_task():
    sel = select(task(running_on=frozenset({"id-a"})), [helper("a"), helper("b")])
    assert sel.rejected == {"a": RUNS_THIS_TASK}
    assert [c.helper.name for c in sel.candidates] == ["b"]


def test_select_with_no_feasible_helper():
    small_gpu = helper("small-gpu", gpus_free=gpus(8), gpus_total=1)
    sel = select(task(gpus=1, gpu_memory=10 * GiB), [helper("cpu-only"), small_gpu])
    assert sel.candidates == []
    assert sel.rejected == {"cpu-only": NOT_ENOUGH_GPUS, "small-gpu": NOT_ENOUGH_GPU_MEMORY}


def test_select_with_custom_filters_and_scorers():
    def only_b(t, h):
        return None if h.name == "b" else "not b"

    def by_cpus(t, h):
        return h.cpus_free / 100

    helpers = [helper("a", cpus_free=50), helper("b", cpus_free=10), helper("c", cpus_free=90)]
    sel = select(task(), helpers, filters=(), scorers=((by_cpus, 1.0, True),))
    assert [c.helper.name for c in sel.candidates] == ["c", "a", "b"]
    assert sel.candidates[0].scores == {"by_cpus": 0.9}
    assert sel.candidates[0].score == pytest.approx(0.9)
    sel = select(task(placement="binpack"), helpers, filters=(), scorers=((by_cpus, 1.0, True),))
    assert [c.helper.name for c in sel.candidates] == ["b", "a", "c"]
    sel = select(task(), helpers, filters=(only_b,))
    assert sel.rejected == {"a": "not b", "c": "not b"}


def test_tie_break_is_reproducible_by_task_id():
    helpers = [helper(f"h{i}") for i in range(6)]
    orders = set()
    for task_id in (f"task-{n}" for n in range(20)):
        first = [c.helper.name for c in select(task(task_id), helpers).candidates]
        again = [c.helper.name for c in select(task(task_id), helpers).candidates]
        assert first == again
        assert sorted(first) == [h.name for h in helpers]
        orders.add(tuple(first))
    assert len(orders) > 1, "the task id should change how ties fall"


def test_tie_break_never_beats_a_better_score():
    helpers = [helper(f"h{i}", slots=2, running=1) for i in range(4)] + [helper("free", slots=2)]
    for n in range(10):
        assert select(task(str(n)), helpers).candidates[0].helper.name == "free"


# --- Selection: wait_reason() and explain() ------------------------------------------


def test_wait_reason_counts_reasons_most_common_first():
    helpers = [helper("gone", online=False), helper("a"), helper("b")]
    sel = select(task(gpus=1), helpers)
    assert sel.wait_reason() == "3 helpers: 2 not enough free GPUs, 1 offline"


def test_wait_reason_with_one_helper():
    sel = select(task(memory=64 * GiB), [helper("a")])
    assert sel.wait_reason() == "1 helper: 1 not enough free memory"


def test_wait_reason_counts_candidates_too():
    sel = select(task(), [helper("a"), helper("gone", online=False)])
    assert sel.wait_reason() == "2 helpers: 1 offline"


def test_wait_reason_when_every_helper_could_take_it():
    assert select(task(), [helper("a")]).wait_reason() == "1 helper can take it"
    assert select(task(), [helper("a"), helper("b")]).wait_reason() == "2 helpers can take it"


def test_wait_reason_without_helpers():
    assert Selection().wait_reason() == "no helpers registered"
    assert select(task(), []).wait_reason() == "no helpers registered"


def test_explain_lists_rejections_and_the_rounded_ranking():
    sel = select(task(**WORK), [BUSY, helper("gone", online=False), ROOMY])
    assert sel.explain() == {
        "rejected": {"gone": OFFLINE},
        "ranking": [
            {
                "helper": "roomy",
                "score": round((2 + 0.75 * 3 + 1 + 1 + 4) / 11, 4),
                "scores": {
                    "prefer_free_gpu_memory": 1.0,
                    "prefer_free_cpu": 0.75,
                    "prefer_free_memory": 0.75,
                    "prefer_fewest_running": 0.75,
                    "keep_gpu_hosts_for_gpu_work": 1.0,
                    "avoid_recent_failures": 1.0,
                    "avoid_where_it_failed": 1.0,
                },
            },
            {
                "helper": "busy",
                "score": round((2 + 0.25 * 3 + 1 + 1 + 4) / 11, 4),
                "scores": {
                    "prefer_free_gpu_memory": 1.0,
                    "prefer_free_cpu": 0.25,
                    "prefer_free_memory": 0.25,
                    "prefer_fewest_running": 0.25,
                    "keep_gpu_hosts_for_gpu_work": 1.0,
                    "avoid_recent_failures": 1.0,
                    "avoid_where_it_failed": 1.0,
                },
            },
        ],
    }


def test_explain_rounds_to_four_places():
    sel = select(task(), [helper("a", slots=3)])  # prefer_fewest_running: 2/3
    (entry,) = sel.explain()["ranking"]
    assert entry["scores"]["prefer_fewest_running"] == 0.6667


# --- reserve_gpus() --------------------------------------------------------------------


def test_reserve_gpus_without_gpus_is_empty():
    assert reserve_gpus(task(), helper(gpus_free=gpus(16))) == []


def test_reserve_gpus_takes_the_most_free_memory_first():
    h = helper(gpus_free=gpus(4, 12, 8, 16), gpus_total=4)
    assert reserve_gpus(task(gpus=1), h) == [3]
    assert reserve_gpus(task(gpus=2), h) == [1, 3]  # sorted indices
    assert reserve_gpus(task(gpus=3), h) == [1, 2, 3]


def test_reserve_gpus_breaks_ties_by_index():
    h = helper(gpus_free=(gpu(3, 8), gpu(1, 8), gpu(2, 8)), gpus_total=4)
    assert reserve_gpus(task(gpus=2), h) == [1, 2]


def test_reserve_gpus_skips_reserved_and_too_small_gpus():
    # GPU 1 is reserved (not among the free ones); GPU 0 is too small
    h = helper(gpus_free=(gpu(0, 4), gpu(2, 10), gpu(3, 9)), gpus_total=4)
    assert reserve_gpus(task(gpus=2, gpu_memory=8 * GiB), h) == [2, 3]
    assert reserve_gpus(task(gpus=1, gpu_memory=10 * GiB), h) == [2]


@pytest.mark.parametrize(
    ("need", "per_gpu_gib", "free", "fitting"),
    [
        (3, 0, (gpu(0, 4), gpu(2, 10)), 2),
        (2, 8, (gpu(0, 4), gpu(2, 10)), 1),
        (1, 12, (gpu(0, 4), gpu(2, 10)), 0),
        (1, 0, (), 0),
    ],
)
def test_reserve_gpus_raises_when_not_enough_fit(need, per_gpu_gib, free, fitting):
    h = helper("gpu-1", gpus_free=free, gpus_total=4)
    with pytest.raises(ValueError, match=f"gpu-1 has only {fitting} fitting free GPUs"):
        reserve_gpus(task(gpus=need, gpu_memory=per_gpu_gib * GiB), h)
