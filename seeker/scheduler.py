"""Choosing a helper for a task: filters (a reason or None), scorers (0..1),
and `select()`, which keeps every rejection reason and score."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

NO_FREE_SLOT = "no free slot"
NOT_ENOUGH_CPU = "not enough CPUs"
NOT_ENOUGH_MEMORY = "not enough memory"
NOT_ENOUGH_GPUS = "not enough GPUs"
NOT_ENOUGH_GPU_MEMORY = "not enough GPU memory"


@dataclass(frozen=True)
class HelperView:
    """What the scheduler knows of a helper at one moment."""

    helper_id: str
    name: str
    slots: int
    running: int
    cpus: float
    memory: int
    gpu_memory: tuple[int, ...] = ()  # free memory of each GPU

    @classmethod
    def from_doc(cls, doc: dict, running: int) -> HelperView:
        res = doc.get("resources") or {}
        return cls(
            helper_id=doc["helper_id"],
            name=doc["name"],
            slots=doc.get("slots", 1),
            running=running,
            cpus=res.get("cpus", 0),
            memory=res.get("memory_available", 0),
            gpu_memory=tuple(g.get("memory_free", 0) for g in res.get("gpus", [])),
        )


Filter = Callable[[dict, HelperView], "str | None"]
Scorer = Callable[[dict, HelperView], float]


def has_free_slot(res: dict, h: HelperView) -> str | None:
    return None if h.running < h.slots else NO_FREE_SLOT


def has_cpus(res: dict, h: HelperView) -> str | None:
    return None if res.get("cpus", 0) <= h.cpus else NOT_ENOUGH_CPU


def has_memory(res: dict, h: HelperView) -> str | None:
    return None if res.get("memory", 0) <= h.memory else NOT_ENOUGH_MEMORY


def has_gpus(res: dict, h: HelperView) -> str | None:
    return None if res.get("gpus", 0) <= len(h.gpu_memory) else NOT_ENOUGH_GPUS


def has_gpu_memory(res: dict, h: HelperView) -> str | None:
    need, count = res.get("gpu_memory", 0), res.get("gpus", 0)
    if not need or not count:
        return None
    fitting = sum(1 for free in h.gpu_memory if free >= need)
    return None if fitting >= count else NOT_ENOUGH_GPU_MEMORY


def prefer_free_slots(res: dict, h: HelperView) -> float:
    return max(0.0, (h.slots - h.running) / h.slots) if h.slots else 0.0


def prefer_free_memory(res: dict, h: HelperView) -> float:
    if not h.memory:
        return 0.0
    return max(0.0, min(1.0, (h.memory - res.get("memory", 0)) / h.memory))


FILTERS: tuple[Filter, ...] = (has_free_slot, has_cpus, has_memory, has_gpus, has_gpu_memory)
SCORERS: tuple[tuple[Scorer, float], ...] = ((prefer_free_slots, 1.0), (prefer_free_memory, 0.5))


@dataclass
class Candidate:
    helper: HelperView
    score: float
    scores: dict[str, float]


@dataclass
class Selection:
    candidates: list[Candidate] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # helper name -> reason

    def wait_reason(self) -> str:
        """e.g. '3 helpers: 2 not enough GPUs, 1 no free slot'"""
        total = len(self.rejected) + len(self.candidates)
        if total == 0:
            return "no helpers registered"
        counts = Counter(self.rejected.values())
        parts = ", ".join(f"{n} {reason}" for reason, n in counts.most_common())
        noun = "helper" if total == 1 else "helpers"
        return f"{total} {noun}: {parts}"


def select(
    resources: dict, helpers: list[HelperView], seed: str = "", filters=FILTERS, scorers=SCORERS
) -> Selection:
    """Rank the helpers that can take a task asking for `resources`."""
    sel = Selection()
    for h in helpers:
        reason = next((r for f in filters if (r := f(resources, h)) is not None), None)
        if reason is not None:
            sel.rejected[h.name] = reason
            continue
        scores = {s.__name__: s(resources, h) for s, _ in scorers}
        total = sum(w * scores[s.__name__] for s, w in scorers) / sum(w for _, w in scorers)
        sel.candidates.append(Candidate(h, total, scores))
    rng = random.Random(seed)
    tiebreak = {c.helper.helper_id: rng.random() for c in sel.candidates}
    sel.candidates.sort(key=lambda c: (-c.score, tiebreak[c.helper.helper_id]))
    return sel
