"""`select_in_fleet()`: the default pipeline (`pipeline.FILTERS`, then
`pipeline.SCORERS`) for one task as one plain loop over a Fleet's rows: the
same checks in the same order, the same arithmetic in the same order (so the
same scores to the last bit), counting rejections by reason instead of
keeping each, and ranking lazily (`ranking.Ranking`): the best helper costs a
max() and its ties; the rest of the ranking, a sort, is done only when read.
tests/unit/test_fleet.py checks it against `pipeline.select_by_pipeline()`."""

from __future__ import annotations

from collections.abc import Callable

from helper.images import normalise_image
from helper.policy import image_allowed, mount_allowed
from seeker.placement.fleet import (
    GONE,
    W_CPU,
    W_FAILED_HERE,
    W_GPU,
    W_GPU_HOST,
    W_IMAGE,
    W_MEMORY,
    WEIGHT,
    Fleet,
    Row,
)
from seeker.placement.pipeline import (
    FILTERS,
    IMAGE_NOT_ALLOWED,
    LABELS_DIFFER,
    MOUNT_NOT_ALLOWED,
    NO_FREE_SLOT,
    NOT_ENOUGH_CPU,
    NOT_ENOUGH_GPU_MEMORY,
    NOT_ENOUGH_GPUS,
    NOT_ENOUGH_MEMORY,
    OFFLINE,
    RUNS_THIS_TASK,
    SCORERS,
    Selection,
    allows_image,
    allows_mounts,
    avoid_recent_failures,
    avoid_where_it_failed,
    first_failing,
    has_compute_capability,
    has_cpus,
    has_cuda,
    has_free_slot,
    has_gpu_memory,
    has_gpu_model,
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
    prefer_image_present,
)
from seeker.placement.ranking import Ranking
from seeker.placement.views import HelperView, TaskView

# What the loop below implements, in this order; select() takes the fast path
# only while pipeline.FILTERS and SCORERS are these (the weights may change).
FAST_FILTERS = (
    is_online,
    not_running_this_task,
    has_free_slot,
    matches_labels,
    allows_image,
    allows_mounts,
    has_cpus,
    has_memory,
    has_gpu_model,  # these three pass every task handles() admits: the loop skips them
    has_cuda,
    has_compute_capability,
    has_gpus,
    has_gpu_memory,
)
FAST_SCORERS = (
    (prefer_free_gpu_memory, True),
    (prefer_free_cpu, True),
    (prefer_free_memory, True),
    (prefer_fewest_running, True),
    (keep_gpu_hosts_for_gpu_work, False),
    (avoid_recent_failures, False),
    (avoid_where_it_failed, False),
    (prefer_image_present, False),
)
FAST = FILTERS == FAST_FILTERS and tuple((s, p) for s, _, p in SCORERS) == FAST_SCORERS


def handles(task: TaskView, filters, scorers) -> bool:
    """Whether select_in_fleet() gives what select_by_pipeline() would: for
    the default pipeline and a task of whole GPUs, of any model, CUDA version
    and compute capability. A share of a GPU or a GPU filter goes through
    the pipeline."""
    return (
        FAST
        and filters is FILTERS
        and scorers is SCORERS
        and type(task.gpus) is int
        and task.gpus >= 0
        and not task.gpu_model
        and not task.min_cuda
        and not task.min_compute_capability
    )


def labels_match(labels: dict, constraints: tuple) -> bool:
    return all(labels.get(key) == value for key, value in constraints)


class Verdicts(dict):
    """A helper's allowed patterns -> whether they let the task in, worked out
    once for each tuple of patterns (most helpers share a few)."""

    def __init__(self, allowed: Callable[[tuple[str, ...]], bool]):
        super().__init__()
        self._allowed = allowed

    def __missing__(self, patterns: tuple[str, ...]) -> bool:
        ok = self[patterns] = self._allowed(patterns)
        return ok


def select_in_fleet(task: TaskView, fleet: Fleet) -> Selection:
    """select() with the default filters and scorers, over a fleet's rows."""
    rows = fleet.rows()  # a snapshot: the dispatcher changes the fleet as it places
    scores, views, reasons = filter_and_score(task, rows)

    def find_rejected() -> dict[str, str]:
        rejected = ((r.view.name, first_failing(task, r.view)) for r in rows)
        return {name: reason for name, reason in rejected if reason is not None}

    return Selection(
        Ranking(task, views, scores) if views else [],
        reasons=reasons if fleet.names_are_unique else None,
        find_rejected=find_rejected,
    )


def filter_and_score(  # noqa: C901 - a branch per filter, inline: calls cost more than checks
    task: TaskView, rows: list[Row]
) -> tuple[list[float], list[HelperView], dict[str, int]]:
    """The scores and views of the rows that pass every filter, and how many
    rows each reason rejected, in the order each reason was first met (the
    order wait_reason() lists ties in). Each branch of the if/elif chain is
    one filter of FAST_FILTERS, in order."""
    cpus, memory, gpus, gpu_memory = task.cpus, task.memory, task.gpus, task.gpu_memory
    running_on, mounts, may_wait = task.running_on, task.mounts, task.may_wait
    constraints = tuple(task.constraints.items())
    one_constraint = len(constraints) == 1
    key, value = constraints[0] if one_constraint else (None, None)  # the usual case, inlined
    images_ok = Verdicts(lambda allowed: image_allowed(task.image, allowed))
    mounts_ok = Verdicts(lambda allowed: all(mount_allowed(src, allowed) for src in mounts))
    check_gpu_memory = gpus > 0 and bool(gpu_memory)
    failed_on = task.failed_on
    binpack = task.placement == "binpack"
    gpu_host = W_GPU_HOST * keep_gpu_hosts_for_gpu_work(task, _GPU_HOST)
    not_gpu_host = W_GPU_HOST * keep_gpu_hosts_for_gpu_work(task, _CPU_HOST)
    failed_here, not_failed_here = W_FAILED_HERE * 0.0, W_FAILED_HERE * 1.0
    no_gpus = W_GPU * ((1.0 - 1.0) if binpack else 1.0)
    image = normalise_image(task.image) if task.image else None
    has_image, no_image = W_IMAGE * 1.0, W_IMAGE * 0.0
    scores: list[float] = []
    views: list[HelperView] = []
    reasons: dict[str, int] = {}
    for row in rows:
        if row.wait_state if may_wait else row.state:
            if row.state == GONE:
                reason = OFFLINE
            elif running_on and row.helper_id in running_on:
                reason = RUNS_THIS_TASK
            else:
                reason = NO_FREE_SLOT
        elif running_on and row.helper_id in running_on:
            reason = RUNS_THIS_TASK
        elif constraints and not (
            row.labels.get(key) == value
            if one_constraint
            else labels_match(row.labels, constraints)
        ):
            reason = LABELS_DIFFER
        elif row.allowed_images and not images_ok[row.allowed_images]:
            reason = IMAGE_NOT_ALLOWED
        elif mounts and not mounts_ok[row.allowed_mounts]:
            reason = MOUNT_NOT_ALLOWED
        elif not cpus <= row.cpus_free:
            reason = NOT_ENOUGH_CPU
        elif not memory <= row.memory_free:
            reason = NOT_ENOUGH_MEMORY
        elif gpus and not gpus <= row.gpus_free:
            reason = NOT_ENOUGH_GPUS
        # at least `gpus` GPUs have that much free: the gpus-th largest has
        elif check_gpu_memory and not row.gpu_memory_free[gpus - 1] >= gpu_memory:
            reason = NOT_ENOUGH_GPU_MEMORY
        else:
            if gpus:
                g = row.gpu_scores.get(gpus)
                if g is None:
                    g = row.gpu_scores[gpus] = prefer_free_gpu_memory(task, row.view)
                g = W_GPU * (1.0 - g if binpack else g)
            else:
                g = no_gpus
            ct, mt = row.cpus_total, row.memory_total
            if ct:
                c = (row.cpus_free - cpus) / ct
                c = c if c < 1.0 else 1.0
                c = c if c > 0.0 else 0.0
            else:
                c = 0.0
            if mt:
                m = (row.memory_free - memory) / mt
                m = m if m < 1.0 else 1.0
                m = m if m > 0.0 else 0.0
            else:
                m = 0.0
            if binpack:
                c, m, r = W_CPU * (1.0 - c), W_MEMORY * (1.0 - m), row.running_binpack
            else:
                c, m, r = W_CPU * c, W_MEMORY * m, row.running_spread
            k = gpu_host if row.gpu_host else not_gpu_host
            w = failed_here if failed_on and row.helper_id in failed_on else not_failed_here
            i = has_image if row.images and image in row.images else no_image
            scores.append(((((((((0.0 + g) + c) + m) + r) + k) + row.failures) + w) + i) / WEIGHT)
            views.append(row.view)
            continue
        reasons[reason] = reasons.get(reason, 0) + 1
    return scores, views, reasons


# keep_gpu_hosts_for_gpu_work() of a GPU host and of a host without GPUs
_GPU_HOST = HelperView("", "", gpus_total=1)
_CPU_HOST = HelperView("", "")
