"""select(): ranking, rejection reasons, policies, explanations; and
reserve_gpus()."""

from __future__ import annotations

import pytest
from scheduler_views import GiB, gpu, gpus, helper, task

from seeker.placement import select
from seeker.placement.pipeline import (
    LABELS_DIFFER,
    NO_FREE_SLOT,
    NOT_ENOUGH_GPU_MEMORY,
    NOT_ENOUGH_GPUS,
    OFFLINE,
    RUNS_THIS_TASK,
    Selection,
    breakdown,
    keep_gpu_hosts_for_gpu_work,
    reserve_gpus,
    select_by_pipeline,
    weighed,
)

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
        "prefer_image_present": 0.0,
    }
    # weights 2, 1, 1, 1, 1, 1, 4, 1
    assert roomy.score == pytest.approx((2 + 0.75 * 3 + 1 + 1 + 4 + 0) / 12)
    assert busy.scores["prefer_free_cpu"] == pytest.approx(0.25)
    assert busy.score == pytest.approx((2 + 0.25 * 3 + 1 + 1 + 4 + 0) / 12)
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
        "prefer_image_present": 0.0,
    }
    assert busy.score == pytest.approx((0.75 * 3 + 1 + 1 + 4 + 0) / 12)
    assert roomy.score == pytest.approx((0.25 * 3 + 1 + 1 + 4 + 0) / 12)


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


def test_weighed_adds_the_weighed_scores_left_to_right():
    scores = breakdown(task(**WORK), BUSY)
    total = 0.0
    for value, w in zip(scores.values(), (2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 4.0, 1.0), strict=True):
        total += w * value
    assert weighed(scores) == total / 12.0
    assert select(task(**WORK), [BUSY]).candidates[0].score == weighed(scores)


def test_select_and_the_plain_pipeline_agree():
    helpers = [BUSY, helper("gone", online=False), ROOMY, helper("small", cpus_free=1)]
    fast, plain = select(task(**WORK), helpers), select_by_pipeline(task(**WORK), helpers)
    assert list(fast.candidates) == plain.candidates
    assert fast.rejected == plain.rejected == {"gone": OFFLINE, "small": "not enough free CPUs"}
    assert fast.reasons == plain.reasons == {OFFLINE: 1, "not enough free CPUs": 1}


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
                "score": round((2 + 0.75 * 3 + 1 + 1 + 4 + 0) / 12, 4),
                "scores": {
                    "prefer_free_gpu_memory": 1.0,
                    "prefer_free_cpu": 0.75,
                    "prefer_free_memory": 0.75,
                    "prefer_fewest_running": 0.75,
                    "keep_gpu_hosts_for_gpu_work": 1.0,
                    "avoid_recent_failures": 1.0,
                    "avoid_where_it_failed": 1.0,
                    "prefer_image_present": 0.0,
                },
            },
            {
                "helper": "busy",
                "score": round((2 + 0.25 * 3 + 1 + 1 + 4 + 0) / 12, 4),
                "scores": {
                    "prefer_free_gpu_memory": 1.0,
                    "prefer_free_cpu": 0.25,
                    "prefer_free_memory": 0.25,
                    "prefer_fewest_running": 0.25,
                    "keep_gpu_hosts_for_gpu_work": 1.0,
                    "avoid_recent_failures": 1.0,
                    "avoid_where_it_failed": 1.0,
                    "prefer_image_present": 0.0,
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
