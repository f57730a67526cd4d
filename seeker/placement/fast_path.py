"""`select_in_fleet()`: the default pipeline (`pipeline.FILTERS`, then
`pipeline.SCORERS`) for one task as one plain loop over a Fleet's rows: the
same checks in the same order, the same arithmetic in the same order (so the
same scores to the last bit), counting rejections by reason instead of
keeping each, and ranking lazily (`ranking.Ranking`): the best helper costs a
max() and its ties; the rest of the ranking, a sort, is done only when read.
tests/unit/test_fleet.py checks it against `pipeline.select_by_pipeline()`."""

from __future__ import annotations

from helper.policy import image_allowed, mount_allowed
from seeker.placement.fleet import (
    GONE,
    W_CPU,
    W_FAILED_HERE,
    W_GPU,
    W_GPU_HOST,
    W_MEMORY,
    WEIGHT,
    Fleet,
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
)
from seeker.placement.ranking import Ranking
from seeker.placement.views import HelperView, TaskView

# What the loop below implements, in this order; select() takes the fast path
# only while scheduler.FILTERS and SCORERS are these (the weights may change).
FAST_FILTERS = (
    is_online,
    not_running_this_task,
    has_free_slot,
    matches_labels,
    allows_image,
    allows_mounts,
    has_cpus,
    has_memory,
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
)
FAST = FILTERS == FAST_FILTERS and tuple((s, p) for s, _, p in SCORERS) == FAST_SCORERS


def handles(task: TaskView, filters, scorers) -> bool:
    """Whether select_in_fleet() gives what select_by_pipeline() would."""
    return (
        FAST
        and filters is FILTERS
        and scorers is SCORERS
        and type(task.gpus) is int
        and task.gpus >= 0
    )


def labels_match(labels: dict, constraints: tuple) -> bool:
    return all(labels.get(key) == value for key, value in constraints)


def select_in_fleet(task: TaskView, fleet: Fleet) -> Selection:
    """select() with the default filters and scorers, over a fleet's rows.
    Each `if not ...: count; continue` below is one filter of FAST_FILTERS,
    in order; the score is scheduler.weighed(scheduler.breakdown(...))."""
    rows = fleet.rows()  # a snapshot: the dispatcher changes the fleet as it places
    cpus, memory, gpus, gpu_memory = task.cpus, task.memory, task.gpus, task.gpu_memory
    running_on, failed_on, image, mounts = task.running_on, task.failed_on, task.image, task.mounts
    constraints = tuple(task.constraints.items())
    one_constraint = len(constraints) == 1
    key, value = constraints[0] if one_constraint else (None, None)  # the usual case, inlined
    binpack = task.placement == "binpack"
    check_gpu_memory = gpus > 0 and bool(gpu_memory)
    gpu_host = W_GPU_HOST * keep_gpu_hosts_for_gpu_work(task, _GPU_HOST)
    not_gpu_host = W_GPU_HOST * keep_gpu_hosts_for_gpu_work(task, _CPU_HOST)
    failed_here, not_failed_here = W_FAILED_HERE * 0.0, W_FAILED_HERE * 1.0
    no_gpus = W_GPU * ((1.0 - 1.0) if binpack else 1.0)  # prefer_free_gpu_memory: 1.0 without GPUs
    w_cpu, w_memory, weight = W_CPU, W_MEMORY, WEIGHT
    images_ok: dict[tuple, bool] = {}
    mounts_ok: dict[tuple, bool] = {}
    gone = runs = full = labels_differ = image_refused = mount_refused = 0
    short_cpu = short_memory = short_gpus = short_gpu_memory = 0
    seen: list[str] = []  # each reason when first met: wait_reason() lists ties in that order
    scores: list[float] = []
    views: list[HelperView] = []
    add_score, add_view = scores.append, views.append
    for row in rows:
        if row[0]:
            if row[0] == GONE:
                if not gone:
                    seen.append(OFFLINE)
                gone += 1
            elif running_on and row[2] in running_on:
                if not runs:
                    seen.append(RUNS_THIS_TASK)
                runs += 1
            else:
                if not full:
                    seen.append(NO_FREE_SLOT)
                full += 1
            continue
        (_, view, hid, cf, ct, mf, mt, n_gpus, gpu_free, by_gpus, run_s, run_b, fail, on_gpu_host,
         labels, allowed_images, allowed_mounts) = row  # fmt: skip
        if running_on and hid in running_on:
            if not runs:
                seen.append(RUNS_THIS_TASK)
            runs += 1
            continue
        if constraints and not (
            labels.get(key) == value if one_constraint else labels_match(labels, constraints)
        ):
            if not labels_differ:
                seen.append(LABELS_DIFFER)
            labels_differ += 1
            continue
        if allowed_images:
            ok = images_ok.get(allowed_images)
            if ok is None:
                ok = images_ok[allowed_images] = image_allowed(image, allowed_images)
            if not ok:
                if not image_refused:
                    seen.append(IMAGE_NOT_ALLOWED)
                image_refused += 1
                continue
        if mounts:
            ok = mounts_ok.get(allowed_mounts)
            if ok is None:
                ok = all(mount_allowed(src, allowed_mounts) for src in mounts)
                mounts_ok[allowed_mounts] = ok
            if not ok:
                if not mount_refused:
                    seen.append(MOUNT_NOT_ALLOWED)
                mount_refused += 1
                continue
        if not cpus <= cf:
            if not short_cpu:
                seen.append(NOT_ENOUGH_CPU)
            short_cpu += 1
            continue
        if not memory <= mf:
            if not short_memory:
                seen.append(NOT_ENOUGH_MEMORY)
            short_memory += 1
            continue
        if gpus:
            if not gpus <= n_gpus:
                if not short_gpus:
                    seen.append(NOT_ENOUGH_GPUS)
                short_gpus += 1
                continue
            # at least `gpus` GPUs have that much free: the gpus-th largest has
            if check_gpu_memory and not gpu_free[gpus - 1] >= gpu_memory:
                if not short_gpu_memory:
                    seen.append(NOT_ENOUGH_GPU_MEMORY)
                short_gpu_memory += 1
                continue
            g = by_gpus.get(gpus)
            if g is None:
                g = by_gpus[gpus] = prefer_free_gpu_memory(task, view)
            g = W_GPU * (1.0 - g if binpack else g)
        else:
            g = no_gpus
        # _left(free, need, total): max(0.0, min(1.0, (free - need) / total))
        if ct:
            c = (cf - cpus) / ct
            c = c if c < 1.0 else 1.0
            c = c if c > 0.0 else 0.0
        else:
            c = 0.0
        if mt:
            m = (mf - memory) / mt
            m = m if m < 1.0 else 1.0
            m = m if m > 0.0 else 0.0
        else:
            m = 0.0
        if binpack:
            c, m, r = w_cpu * (1.0 - c), w_memory * (1.0 - m), run_b
        else:
            c, m, r = w_cpu * c, w_memory * m, run_s
        k = gpu_host if on_gpu_host else not_gpu_host
        w = failed_here if failed_on and hid in failed_on else not_failed_here
        add_score((((((((0.0 + g) + c) + m) + r) + k) + fail) + w) / weight)
        add_view(view)
    counts = {
        OFFLINE: gone,
        RUNS_THIS_TASK: runs,
        NO_FREE_SLOT: full,
        LABELS_DIFFER: labels_differ,
        IMAGE_NOT_ALLOWED: image_refused,
        MOUNT_NOT_ALLOWED: mount_refused,
        NOT_ENOUGH_CPU: short_cpu,
        NOT_ENOUGH_MEMORY: short_memory,
        NOT_ENOUGH_GPUS: short_gpus,
        NOT_ENOUGH_GPU_MEMORY: short_gpu_memory,
    }

    def find_rejected() -> dict[str, str]:
        rejected = ((r[1].name, first_failing(task, r[1])) for r in rows)
        return {name: reason for name, reason in rejected if reason is not None}

    return Selection(
        Ranking(task, views, scores) if views else [],
        reasons={reason: counts[reason] for reason in seen} if fleet.names_are_unique else None,
        find_rejected=find_rejected,
    )


# keep_gpu_hosts_for_gpu_work() of a GPU host and of a host without GPUs
_GPU_HOST = HelperView("", "", gpus_total=1)
_CPU_HOST = HelperView("", "")
