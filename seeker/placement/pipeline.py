"""Choosing a helper for a task, as a pipeline of small pure functions:
filters (a reason or None), scorers (0..1) weighed by a placement policy, and
`select()`, which keeps every rejection reason and score. The GPU filters
and what an assignment reserves (`reservation_for()`, after selection) are in
`gpus.py`."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from helper.images import normalise_image
from helper.policy import image_allowed, mount_allowed
from seeker.models import Placement
from seeker.placement.gpus import NOT_ENOUGH_GPU_MEMORY as NOT_ENOUGH_GPU_MEMORY  # re-exported
from seeker.placement.gpus import NOT_ENOUGH_GPUS as NOT_ENOUGH_GPUS  # with the other reasons
from seeker.placement.gpus import (
    devices_needed,
    free_for,
    has_compute_capability,
    has_cuda,
    has_gpu_memory,
    has_gpu_model,
    has_gpus,
)
from seeker.placement.gpus import reserve_gpus as reserve_gpus  # where bench/choice.py finds it
from seeker.placement.views import HelperView, TaskView

OFFLINE = "offline"
RUNS_THIS_TASK = "already has a replica of this task"
NO_FREE_SLOT = "no free slot"
LABELS_DIFFER = "labels do not match"
NOT_ENOUGH_CPU = "not enough free CPUs"
NOT_ENOUGH_MEMORY = "not enough free memory"
IMAGE_NOT_ALLOWED = "image not allowed"
MOUNT_NOT_ALLOWED = "mount not allowed"


Filter = Callable[[TaskView, HelperView], "str | None"]
Scorer = Callable[[TaskView, HelperView], float]


# --- filters, cheap ones first -----------------------------------------------


def is_online(t: TaskView, h: HelperView) -> str | None:
    return None if h.online else OFFLINE


def not_running_this_task(t: TaskView, h: HelperView) -> str | None:
    return RUNS_THIS_TASK if h.helper_id in t.running_on else None


def has_free_slot(t: TaskView, h: HelperView) -> str | None:
    room = h.slots + h.prefetch if t.may_wait else h.slots
    return None if h.running < room else NO_FREE_SLOT


def matches_labels(t: TaskView, h: HelperView) -> str | None:
    ok = all(h.labels.get(k) == v for k, v in t.constraints.items())
    return None if ok else LABELS_DIFFER


def allows_image(t: TaskView, h: HelperView) -> str | None:
    return None if image_allowed(t.image, h.allowed_images) else IMAGE_NOT_ALLOWED


def allows_mounts(t: TaskView, h: HelperView) -> str | None:
    ok = all(mount_allowed(src, h.allowed_mounts) for src in t.mounts)
    return None if ok else MOUNT_NOT_ALLOWED


def has_cpus(t: TaskView, h: HelperView) -> str | None:
    return None if t.cpus <= h.cpus_free else NOT_ENOUGH_CPU


def has_memory(t: TaskView, h: HelperView) -> str | None:
    return None if t.memory <= h.memory_free else NOT_ENOUGH_MEMORY


FILTERS: tuple[Filter, ...] = (
    is_online,
    not_running_this_task,
    has_free_slot,
    matches_labels,
    allows_image,
    allows_mounts,
    has_cpus,
    has_memory,
    has_gpu_model,
    has_cuda,
    has_compute_capability,
    has_gpus,
    has_gpu_memory,
)


# --- scorers: 1.0 is best for Placement.SPREAD --------------------------------


def _left(free: float, need: float, total: float) -> float:
    return max(0.0, min(1.0, (free - need) / total)) if total else 0.0


def prefer_free_cpu(t: TaskView, h: HelperView) -> float:
    return _left(h.cpus_free, t.cpus, h.cpus_total)


def prefer_free_memory(t: TaskView, h: HelperView) -> float:
    return _left(h.memory_free, t.memory, h.memory_total)


def prefer_free_gpu_memory(t: TaskView, h: HelperView) -> float:
    """Free memory of the GPUs the task would get, as a share of their size."""
    if not t.gpus:
        return 1.0  # no GPUs asked for: the same for every helper
    best = sorted(free_for(t, h), key=lambda g: -g.memory_available)[: devices_needed(t)]
    shares = [g.memory_available / g.memory_total if g.memory_total else 0.0 for g in best]
    return sum(shares) / len(shares) if shares else 0.0


def keep_gpu_hosts_for_gpu_work(t: TaskView, h: HelperView) -> float:
    """Work that needs no GPU goes elsewhere than GPU hosts when it can (under
    either policy: binpack does not invert this one)."""
    return 0.0 if h.gpus_total and not t.gpus else 1.0


def prefer_fewest_running(t: TaskView, h: HelperView) -> float:
    return _left(h.slots - h.running, 1, h.slots) if h.slots > 1 else 1.0 - min(1, h.running)


def avoid_recent_failures(t: TaskView, h: HelperView) -> float:
    return 1.0 / (1.0 + h.failures)


def avoid_where_it_failed(t: TaskView, h: HelperView) -> float:
    return 0.0 if h.helper_id in t.failed_on else 1.0


def prefer_image_present(t: TaskView, h: HelperView) -> float:
    """1 where the helper has the task's image already (nothing to pull),
    else 0; under either policy (binpack does not invert this one)."""
    return 1.0 if t.image and h.images and normalise_image(t.image) in h.images else 0.0


# (scorer, weight, packs): a packing scorer is inverted by the binpack policy
SCORERS: tuple[tuple[Scorer, float, bool], ...] = (
    (prefer_free_gpu_memory, 2.0, True),
    (prefer_free_cpu, 1.0, True),
    (prefer_free_memory, 1.0, True),
    (prefer_fewest_running, 1.0, True),
    (keep_gpu_hosts_for_gpu_work, 1.0, False),
    (avoid_recent_failures, 1.0, False),
    (avoid_where_it_failed, 4.0, False),
    (prefer_image_present, 1.0, False),
)


@dataclass
class Candidate:
    helper: HelperView
    score: float
    scores: dict[str, float]


class Selection:
    """The helpers that can take a task, best first (`candidates`), and why
    each of the others cannot (`rejected`: helper name -> reason). `reasons`
    counts the rejections by reason, in the order each reason was first met:
    all that `wait_reason()` needs, so the fleet's fast path counts them and
    works out `rejected` only when it is read."""

    def __init__(
        self,
        candidates: Sequence[Candidate] | None = None,
        rejected: dict[str, str] | None = None,
        reasons: dict[str, int] | None = None,
        find_rejected: Callable[[], dict[str, str]] | None = None,
    ):
        self.candidates = [] if candidates is None else candidates
        self._rejected = rejected
        self._reasons = reasons
        self._find_rejected = find_rejected

    @property
    def rejected(self) -> dict[str, str]:
        if self._rejected is None:
            self._rejected = self._find_rejected() if self._find_rejected else {}
        return self._rejected

    @property
    def reasons(self) -> dict[str, int]:
        if self._reasons is None:
            self._reasons = dict(Counter(self.rejected.values()))
        return self._reasons

    def wait_reason(self) -> str:
        """e.g. '3 helpers: 2 not enough free GPUs, 1 offline'"""
        counts = Counter(self.reasons)
        total = sum(counts.values()) + len(self.candidates)
        if total == 0:
            return "no helpers registered"
        parts = ", ".join(f"{n} {reason}" for reason, n in counts.most_common())
        noun = "helper" if total == 1 else "helpers"
        return f"{total} {noun}: {parts}" if parts else f"{total} {noun} can take it"

    def explain(self) -> dict:
        return {
            "rejected": dict(self.rejected),
            "ranking": [
                {
                    "helper": c.helper.name,
                    "score": round(c.score, 4),
                    "scores": {k: round(v, 4) for k, v in c.scores.items()},
                }
                for c in self.candidates
            ],
        }


def first_failing(task: TaskView, helper: HelperView, filters=FILTERS) -> str | None:
    """The reason of the first filter that rejects `helper`, or None."""
    return next((r for f in filters if (r := f(task, helper)) is not None), None)


def breakdown(task: TaskView, helper: HelperView, scorers=SCORERS) -> dict[str, float]:
    """Each scorer's value for `helper`, inverted for a packing scorer under
    the binpack policy."""
    binpack = task.placement == Placement.BINPACK
    scores = {}
    for scorer, _, packs in scorers:
        value = scorer(task, helper)
        scores[scorer.__name__] = 1.0 - value if binpack and packs else value
    return scores


def weighed(scores: dict[str, float], scorers=SCORERS) -> float:
    """The weighed mean of a breakdown, added up left to right (as sum() did
    up to Python 3.11; the fleet's fast path adds in the same order, so both
    give the same score to the last bit)."""
    total = weight = 0.0
    for scorer, w, _ in scorers:
        total += w * scores[scorer.__name__]
        weight += w
    return total / weight


def select_by_pipeline(
    task: TaskView, helpers: list[HelperView], filters=FILTERS, scorers=SCORERS
) -> Selection:
    """select() one helper at a time: every filter in turn, then every scorer.
    The reference that the fleet's fast path is tested against."""
    candidates, rejected = [], {}
    for h in helpers:
        reason = first_failing(task, h, filters)
        if reason is not None:
            rejected[h.name] = reason
            continue
        scores = breakdown(task, h, scorers)
        candidates.append(Candidate(h, weighed(scores, scorers), scores))
    rng = random.Random(task.task_id)
    tiebreak = {c.helper.helper_id: rng.random() for c in candidates}
    candidates.sort(key=lambda c: (-c.score, tiebreak[c.helper.helper_id]))
    return Selection(candidates, rejected)
