"""The helper views of one dispatch pass, kept ready for select() over
thousands of helpers.

A `Fleet` maps helper ids to HelperViews, as the dict the dispatcher kept
before did, and keeps beside each view a row of what the default filters and
scorers read: its free and total resources, its GPUs' free memory largest
first, the scores that do not depend on the task, and whether it is offline
or full. The rows are built once per dispatch pass; replacing a view after a
placement rebuilds one row.

`select_in_fleet()` runs the default pipeline (`scheduler.FILTERS`, then
`scheduler.SCORERS`) for one task as one plain loop over those rows: the
same checks in the same order, the same arithmetic in the same order (so the
same scores to the last bit), counting rejections by reason instead of
keeping each, and ranking lazily: the best helper costs a max() and its ties;
the rest of the ranking, a sort, is done only when read. tests/unit/
test_fleet.py checks it against `scheduler.select_by_pipeline()`."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from itertools import repeat

from helper.policy import image_allowed, mount_allowed
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
    Candidate,
    Selection,
    allows_image,
    allows_mounts,
    avoid_recent_failures,
    avoid_where_it_failed,
    breakdown,
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
W_GPU, W_CPU, W_MEMORY, W_RUNNING, W_GPU_HOST, W_FAILURES, W_FAILED_HERE = (
    w for _, w, _ in SCORERS
)


def total_weight(scorers) -> float:
    total = 0.0
    for _, w, _ in scorers:
        total += w
    return total


WEIGHT = total_weight(SCORERS)

OPEN, GONE, FULL = 0, 1, 2  # a row's state: what the first three filters say of it


def handles(task: TaskView, filters, scorers) -> bool:
    """Whether select_in_fleet() gives what select_by_pipeline() would."""
    return (
        FAST
        and filters is FILTERS
        and scorers is SCORERS
        and type(task.gpus) is int
        and task.gpus >= 0
    )


def row_of(h: HelperView) -> tuple:
    """What the fast path reads of one view, in the order it unpacks it."""
    state = GONE if not h.online else OPEN if h.running < h.slots else FULL
    running = prefer_fewest_running(None, h)
    return (
        state,
        h,
        h.helper_id,
        h.cpus_free,
        h.cpus_total,
        h.memory_free,
        h.memory_total,
        len(h.gpus_free),
        tuple(sorted((g.memory_free for g in h.gpus_free), reverse=True)),
        {} if h.gpus_free else None,  # prefer_free_gpu_memory by GPUs asked, when first needed
        W_RUNNING * running,
        W_RUNNING * (1.0 - running),
        W_FAILURES * avoid_recent_failures(None, h),
        bool(h.gpus_total),
        h.labels,
        tuple(h.allowed_images),
        tuple(h.allowed_mounts),
    )


class Fleet(MutableMapping):
    """Helper id -> HelperView, in the order the views were first set, with
    each view's row for select_in_fleet()."""

    def __init__(self, views: Iterable[HelperView] = ()):
        # as if each view were set in turn: a helper id seen again keeps its place
        self._views: dict[str, HelperView] = {v.helper_id: v for v in views}
        self._rows: dict[str, tuple] = {k: row_of(v) for k, v in self._views.items()}
        self._names: dict[str, int] = {}  # name -> how many views have it
        for view in self._views.values():
            self._names[view.name] = self._names.get(view.name, 0) + 1
        self._shared_names = sum(n > 1 for n in self._names.values())  # names used twice

    @classmethod
    def of(cls, views: Iterable[HelperView]) -> Fleet | None:
        """A fleet of a list of views; None when two share a helper id (a
        fleet keeps one view per id, a list's ranking would have both)."""
        views = list(views)
        fleet = cls(views)
        return fleet if len(fleet) == len(views) else None

    def __getitem__(self, helper_id: str) -> HelperView:
        return self._views[helper_id]

    def __setitem__(self, helper_id: str, view: HelperView) -> None:
        if helper_id in self._views:
            self._forget_name(self._views[helper_id].name)
        self._views[helper_id] = view
        self._rows[helper_id] = row_of(view)
        n = self._names[view.name] = self._names.get(view.name, 0) + 1
        self._shared_names += n == 2

    def __delitem__(self, helper_id: str) -> None:
        view = self._views.pop(helper_id)
        del self._rows[helper_id]
        self._forget_name(view.name)

    def _forget_name(self, name: str) -> None:
        n = self._names[name] = self._names[name] - 1
        self._shared_names -= n == 1
        if not n:
            del self._names[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)

    def __contains__(self, helper_id: object) -> bool:
        return helper_id in self._views

    def values(self):
        return self._views.values()

    def items(self):
        return self._views.items()

    def keys(self):
        return self._views.keys()

    def __repr__(self) -> str:
        return f"Fleet({list(self._views.values())!r})"

    @property
    def names_are_unique(self) -> bool:
        return not self._shared_names

    def rows(self) -> list[tuple]:
        return list(self._rows.values())


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


class Ranking(Sequence):
    """The candidates of one selection, best first: sorted by score, then by
    a draw of random.Random(task id) per candidate in the fleet's order (as
    select_by_pipeline() sorts them), but only as far as they are read."""

    def __init__(self, task: TaskView, views: list[HelperView], scores: list[float]):
        self._task = task
        self._views = views
        self._scores = scores
        self._draws: list[float] = []
        self._rng: random.Random | None = None
        self._order: list[int] | None = None

    def __len__(self) -> int:
        return len(self._scores)

    def __iter__(self) -> Iterator[Candidate]:
        if self._order is None:
            best = self._best()
            yield self._candidate(best)
            rest = self._full_order()[1:]  # its first is `best`
        else:
            rest = self._order
        yield from (self._candidate(i) for i in rest)

    def __getitem__(self, index):
        order = self._full_order()
        if isinstance(index, slice):
            return [self._candidate(i) for i in order[index]]
        return self._candidate(order[index])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Ranking({list(self)!r})"

    def _candidate(self, i: int) -> Candidate:
        view = self._views[i]
        return Candidate(view, self._scores[i], breakdown(self._task, view))

    def _tiebreak(self, n: int) -> list[float]:
        """The first n draws, one per candidate in the fleet's order."""
        if self._rng is None:
            self._rng = random.Random(self._task.task_id)
        draws = self._draws
        draws += map(random.Random.random, repeat(self._rng, n - len(draws)))
        return draws

    def _best(self) -> int:
        scores = self._scores
        best = max(scores)
        tied = scores.count(best)
        first = scores.index(best)
        if tied == 1:
            return first
        ties = [first]
        for _ in range(tied - 1):
            ties.append(scores.index(best, ties[-1] + 1))
        return min(ties, key=self._tiebreak(ties[-1] + 1).__getitem__)

    def _full_order(self) -> list[int]:
        if self._order is None:
            scores = self._scores
            order = sorted(range(len(scores)), key=self._tiebreak(len(scores)).__getitem__)
            order.sort(key=scores.__getitem__, reverse=True)  # stable: ties keep the draw order
            self._order = order
        return self._order
