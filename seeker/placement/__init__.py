"""Pure placement decisions: which helper runs a task (views of helpers,
filters and scorers, the fast path over a whole fleet) and which result
counts (outcome). Nothing here talks to MongoDB, Flask or HTTP."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from seeker.placement.fast_path import handles, select_in_fleet
from seeker.placement.fleet import Fleet
from seeker.placement.pipeline import FILTERS, SCORERS, Selection, select_by_pipeline
from seeker.placement.views import HelperView, TaskView

__all__ = ["select"]


def select(
    task: TaskView,
    helpers: Iterable[HelperView] | Mapping[str, HelperView],
    filters=FILTERS,
    scorers=SCORERS,
) -> Selection:
    """Rank the helpers that can take `task`, best first; ties broken by an
    RNG seeded with the task id, so the same inputs give the same ranking.

    `helpers` is a list of views or a `seeker.fleet.Fleet` (what the
    dispatcher passes: its rows are built once per dispatch pass). The
    default filters and scorers run on the fleet's fast path, other ones
    through `select_by_pipeline()`; both give the same selection."""
    if isinstance(helpers, Mapping) and not isinstance(helpers, Fleet):
        helpers = list(helpers.values())
    if handles(task, filters, scorers):
        fleet = helpers if isinstance(helpers, Fleet) else Fleet.of(helpers)
        if fleet is not None:
            return select_in_fleet(task, fleet)
    views = list(helpers.values()) if isinstance(helpers, Fleet) else list(helpers)
    return select_by_pipeline(task, views, filters, scorers)
