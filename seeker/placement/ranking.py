"""The ranking of the fleet's fast path: the candidates best first, sorted
only as far as they are read."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from itertools import repeat

from seeker.placement.pipeline import Candidate, breakdown
from seeker.placement.views import HelperView, TaskView


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
