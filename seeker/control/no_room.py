"""What the dispatcher remembers of a fleet with no room, so that a pass
after news (a submit, a kick, the sweep every 5 s) need not read the queue
while nothing can be placed.

Reading the queue is the costly part of a pass with many tasks waiting: on
SecantusDB its query sorts every pending task, and a kick's search for the
tasks that do not say yet why they wait walks them all again (360-420 ms
of the database's CPU a sweep with 5,000 waiting, every 5 s:
bench/findings.md 44). With no room nothing can be placed, and the tasks that wait were told
why by a pass that saw the same fleet; what a pass after news has left to
do is to tell the tasks new to the queue why they wait: those submitted
(by id), else those created since the last such search (`watermark`).

The memory decides nothing about placement: no room is read afresh from
the database at every pass, and a seeker without the memory (another one,
or this one restarted) reads the queue as before. At most every REREAD the
queue is read whole again, which also tells a task given back, whose
`created_at` is older than the watermark, why it waits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from seeker.control.dispatch_state import has_room
from seeker.placement.capacity import as_utc
from seeker.placement.views import HelperView

# the longest a fleet with no room goes without a pass that reads the queue
REREAD = timedelta(seconds=60)
# a task created before the watermark by this much may be inserted after the
# search (another seeker's clock, the time between its stamp and its insert)
SKEW = timedelta(seconds=5)


def no_room(views: dict[str, HelperView]) -> bool:
    """No online helper has a slot or a place in its queue free: nothing can
    be placed (an empty or offline fleet too)."""
    return not any(has_room(v) for v in views.values())


def signature(views: dict[str, HelperView]) -> frozenset:
    """What a waiting task's reason depends on in a fleet with no room: the
    helpers, and which are online (every online one is full)."""
    return frozenset((v.helper_id, v.online) for v in views.values())


@dataclass
class Memo:
    fleet: frozenset  # signature() of the fleet with no room
    read_at: datetime  # when a pass last read the queue whole
    watermark: datetime  # the tasks created before it were told why they wait


class NoRoom:
    def __init__(self, reread: timedelta = REREAD):
        self.reread = reread
        self._memo: Memo | None = None

    def after_pass(
        self,
        at_start: frozenset | None,
        views: dict[str, HelperView],
        started: datetime,
        watermark: datetime | None,
    ) -> None:
        """A pass that read the queue ended with the helpers `views`.
        `at_start`: the signature() of the fleet when the pass began, if it
        had no room then (None: it had); only a pass that saw one fleet with
        no room throughout told the reasons the memory stands for (one that
        purged a helper told some while it was there). `watermark`: the pass
        told every waiting task created before it why it waits (None: it did
        not look for them, as a pass on room alone)."""
        if not no_room(views):
            self._memo = None
        elif watermark is not None and at_start == signature(views):
            memo = self._memo
            if memo is not None and memo.fleet == at_start:  # what it told still stands
                watermark = max(watermark, memo.watermark)
            self._memo = Memo(at_start, started, watermark)

    def clear(self) -> None:
        """The queue is empty: nothing waits."""
        self._memo = None

    def may_settle(self, now: datetime) -> bool:
        """Whether a pass at `now` may be settled without reading the queue
        (then the fleet is read to see: settles())."""
        memo = self._memo
        return memo is not None and timedelta(0) <= now - memo.read_at < self.reread

    def settles(self, views: dict[str, HelperView]) -> datetime | None:
        """The watermark, when the fleet `views` still has no room and is the
        fleet the memory is of; else None, and the pass reads the queue."""
        memo = self._memo
        if memo is None or not no_room(views) or signature(views) != memo.fleet:
            return None
        return memo.watermark

    def told_since(self, watermark: datetime) -> None:
        """A search told every waiting task created before `watermark`."""
        if self._memo is not None:
            self._memo.watermark = max(self._memo.watermark, watermark)


def watermark_after(found: list[dict], limit: int, started: datetime) -> datetime:
    """What a search for the tasks not told why they wait leaves told: all
    created before the pass (less SKEW), or, when it found `limit` of them
    and may have left more, those created before the last it found."""
    if len(found) >= limit:
        return as_utc(found[-1]["created_at"])
    return started - SKEW
