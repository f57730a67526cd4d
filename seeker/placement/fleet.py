"""The helper views of one dispatch pass, kept ready for select() over
thousands of helpers.

A `Fleet` maps helper ids to HelperViews, as the dict the dispatcher kept
before did, and keeps beside each view a row of what the default filters and
scorers read: its free and total resources, its GPUs' free memory largest
first, the scores that do not depend on the task, and whether it is offline
or full. The dispatcher keeps its Fleet from one pass to the next
(capacity.KeptViews), building again only the rows of helpers that changed;
replacing a view after a placement rebuilds one row, and marks it for the
next pass to build again from the database. `fast_path.select_in_fleet()`
reads the rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass

from seeker.placement.gpus import EPS
from seeker.placement.pipeline import SCORERS, avoid_recent_failures, prefer_fewest_running
from seeker.placement.views import HelperView

W_GPU, W_CPU, W_MEMORY, W_RUNNING, W_GPU_HOST, W_FAILURES, W_FAILED_HERE, W_IMAGE = (
    w for _, w, _ in SCORERS
)


def total_weight(scorers) -> float:
    total = 0.0
    for _, w, _ in scorers:
        total += w
    return total


WEIGHT = total_weight(SCORERS)

OPEN, GONE, FULL = 0, 1, 2  # a row's state: what the first three filters say of it


@dataclass(slots=True)  # slots: read faster in the loop than a NamedTuple's fields
class Row:
    """What the fast path reads of one view, worked out once per view: the
    figures the filters compare and the scores that do not depend on the task."""

    state: int  # OPEN, GONE (offline) or FULL (no free slot)
    wait_state: int  # the same for a task that may wait in its queue (TaskView.may_wait)
    view: HelperView
    helper_id: str
    cpus_free: float
    cpus_total: float
    memory_free: int
    memory_total: int
    gpus_free: int  # how many devices a task could be given whole
    gpu_memory_free: tuple[int, ...]  # the memory available on those, largest first
    gpu_scores: dict[int, float] | None  # prefer_free_gpu_memory by GPUs asked, when first read
    running_spread: float  # W_RUNNING x prefer_fewest_running
    running_binpack: float  # the same, inverted for binpack
    failures: float  # W_FAILURES x avoid_recent_failures
    gpu_host: bool  # has GPUs (keep_gpu_hosts_for_gpu_work)
    labels: dict
    allowed_images: tuple[str, ...]
    allowed_mounts: tuple[str, ...]
    images: frozenset[str]  # normalised references (prefer_image_present)


def row_of(h: HelperView) -> Row:
    state = GONE if not h.online else OPEN if h.running < h.slots else FULL
    wait_state = GONE if not h.online else OPEN if h.running < h.slots + h.prefetch else FULL
    running = prefer_fewest_running(None, h)
    whole = [g.memory_available for g in h.gpus_free if g.share_free + EPS >= 1.0]
    return Row(
        state=state,
        wait_state=wait_state,
        view=h,
        helper_id=h.helper_id,
        cpus_free=h.cpus_free,
        cpus_total=h.cpus_total,
        memory_free=h.memory_free,
        memory_total=h.memory_total,
        gpus_free=len(whole),
        gpu_memory_free=tuple(sorted(whole, reverse=True)),
        gpu_scores={} if h.gpus_free else None,
        running_spread=W_RUNNING * running,
        running_binpack=W_RUNNING * (1.0 - running),
        failures=W_FAILURES * avoid_recent_failures(None, h),
        gpu_host=bool(h.gpus_total),
        labels=h.labels,
        allowed_images=tuple(h.allowed_images),
        allowed_mounts=tuple(h.allowed_mounts),
        images=h.images,
    )


class Fleet(MutableMapping):
    """Helper id -> HelperView, in the order the views were first set, with
    each view's row for select_in_fleet()."""

    def __init__(self, views: Iterable[HelperView] = (), rows: Iterable[Row] = ()):
        """`views`, then `rows` built before (row_of() of their views)."""
        # as if each view were set in turn: a helper id seen again keeps its place
        self._views: dict[str, HelperView] = {v.helper_id: v for v in views}
        self._rows: dict[str, Row] = {k: row_of(v) for k, v in self._views.items()}
        for row in rows:
            self._views[row.helper_id] = row.view
            self._rows[row.helper_id] = row
        self._names: dict[str, int] = {}  # name -> how many views have it
        for view in self._views.values():
            self._names[view.name] = self._names.get(view.name, 0) + 1
        self._shared_names = sum(n > 1 for n in self._names.values())  # names used twice
        self._touched: set[str] = set()  # helper ids whose view was set (KeptViews)
        self._prefetching = sum(v.prefetch > 0 for v in self._views.values())

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
        self._touched.add(helper_id)
        self._put(helper_id, view, row_of(view))

    def put(self, row: Row) -> None:
        """Set a view with its row built before (row_of() of it), as the
        helper's document says it is: not among touched()."""
        self._put(row.helper_id, row.view, row)

    def _put(self, helper_id: str, view: HelperView, row: Row) -> None:
        if helper_id in self._views:
            self._forget(self._views[helper_id])
        self._prefetching += view.prefetch > 0
        self._views[helper_id] = view
        self._rows[helper_id] = row
        n = self._names[view.name] = self._names.get(view.name, 0) + 1
        self._shared_names += n == 2

    def touched(self) -> set[str]:
        """The helper ids whose view was set (`fleet[id] = view`) since the
        last call: a placement pass's changes, which the next one undoes."""
        touched, self._touched = self._touched, set()
        return touched

    def row(self, helper_id: str) -> Row:
        return self._rows[helper_id]

    def __delitem__(self, helper_id: str) -> None:
        self._touched.add(helper_id)
        view = self._views.pop(helper_id)
        del self._rows[helper_id]
        self._forget(view)

    def _forget(self, view: HelperView) -> None:
        self._prefetching -= view.prefetch > 0
        name = view.name
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
    def prefetching(self) -> bool:
        """Whether a helper's view says it prefetches (keeps a queue)."""
        return self._prefetching > 0

    @property
    def names_are_unique(self) -> bool:
        return not self._shared_names

    def rows(self) -> list[Row]:
        return list(self._rows.values())
