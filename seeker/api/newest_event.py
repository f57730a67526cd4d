"""The newest event this seeker read, so that a client following the event
log does not make it read again for nothing.

A client that follows the log (`seeker events --follow`, a batch client,
`bench overhead`) asks for the events after N and waits. Its request is
parked; an event wakes it, it reads the log and is answered; it asks again
at once, for the events after the last it got, and the seeker read the log
a second time only to find nothing and park the request. That second read
was a database query per answer.

So each look at the log leaves here the newest number it found, beside the
wake generation of the requests waiting for events (serving/parking.py),
read before the look. Every event published since, here or at another
seeker (heard through the change feed), changed that generation. A request
asking for what comes after that number, while the generation is the same,
has nothing to read: it is parked at once, and woken by the next event as
any other.

Only for a few seconds (`FRESH`): another seeker's events reach this one
through its change feed, and a feed that is down wakes nobody, so a
request parked so hears of such an event only when its wait is up (and its
next request, seconds after the last look, reads the log). Requests that
do not wait always read."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# seconds a look at the log is trusted for the next request (a follower asks
# again within milliseconds of its answer)
FRESH = 2.0


class NewestEvent:
    def __init__(self, clock: Callable[[], float] = time.monotonic, fresh: float = FRESH):
        self.clock = clock
        self.fresh = fresh
        self._seen: tuple[int, int, float] | None = None  # generation, newest, when
        self._lock = threading.Lock()

    def found(self, generation: int, newest: int) -> None:
        """A look made after reading `generation` found nothing after
        `newest` (the last event it read, or the number it asked after)."""
        with self._lock:
            kept = self._seen
            if kept is not None and kept[0] == generation and kept[1] > newest:
                newest = kept[1]  # another look under this generation saw further
            self._seen = (generation, newest, self.clock())

    def nothing_after(self, generation: int | None, after: int) -> bool:
        """Whether the log is known to hold nothing after `after`: a look
        under this same generation, a moment ago, found nothing past it
        (None: no generation, a server that cannot park: never known)."""
        with self._lock:
            kept = self._seen
        if kept is None or generation is None:
            return False
        seen_generation, newest, when = kept
        return (
            seen_generation == generation and after >= newest and self.clock() - when < self.fresh
        )
