"""The writes of this seeker that its change feed will hear back.

The feed tells this seeker what another seeker did. It brings this
seeker's own writes too, a fraction of a second after they were made, and
five of them would start again what the writer already started in
process, or look for what is not there: a task submitted here (the
submit kicks placement), an offer to a pulling helper made here (the
placement wakes its poll), an assignment ended here by its helper's
report (the report makes room), a task ended here by its one replica's
success (no pulling helper runs it any more), and an event published
here (its publisher answers the requests waiting for it). In a busy
seeker about a third of the passes were these echoes (bench/findings.md,
34), each three reads of the database that found nothing new; an echoed
event had each request waiting for the next event read the log again, and
find nothing (finding 37); an echoed offer had its helper's next poll look
for offers again, and an echoed end looked up the pulling helpers that
run the task (finding 42).

So the writer says, just before each such write, which document it is
about to write, and the feed passes over the one change of that document
it hears next. Said before the write, not after, so that a change heard
before the writing thread returns is recognised too.

Nothing here decides anything: a write said and then not made (it failed,
or changed nothing) leaves a key that is never heard and is dropped after
`KEEP` seconds; an echo heard after that starts a pass that finds nothing
to do, as every echo did before."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

# seconds a write said is looked for (its echo comes within 0.2 s when the
# stream is up; after a reconnection, later)
KEEP = 60.0
# at most this many kept (a submit of a 10,000-task array says 10,000)
MOST = 100_000


class Echoes:
    def __init__(self, clock: Callable[[], float] = time.monotonic, keep: float = KEEP):
        self.clock = clock
        self.keep = keep
        # (collection, id) -> (writes said and not heard yet, when the last
        # was said), oldest first
        self._said: dict[tuple[str, str], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def expect(self, collection: str, ids: Iterable[str]) -> None:
        """This process is about to write these documents of `collection`
        and starts what the write calls for itself. A document said twice
        before the first write's echo is heard (a task submitted and ended
        within the feed's pause) has two echoes to come."""
        now = self.clock()
        with self._lock:
            for i in ids:
                count, _ = self._said.pop((collection, i), (0, now))  # to the end: the newest
                self._said[(collection, i)] = (count + 1, now)
            self._drop_old(now)

    def mine(self, collection: str, doc_id: str) -> bool:
        """Whether a change heard is the echo of a write said here (each is
        recognised once)."""
        with self._lock:
            return self._take((collection, doc_id))

    def forget(self, collection: str, ids: Iterable[str]) -> None:
        """Writes said and not known to be made (their writer failed, and
        did not follow them up): their changes, if heard, are news (one
        write of each: another said of it is still looked for)."""
        with self._lock:
            for i in ids:
                self._take((collection, i))

    def _take(self, key: tuple[str, str]) -> bool:
        said = self._said.get(key)
        if said is None:
            return False
        count, at = said
        if count > 1:
            self._said[key] = (count - 1, at)  # in its place: said at `at`
        else:
            del self._said[key]
        return True

    def __len__(self) -> int:
        return len(self._said)

    def _drop_old(self, now: float) -> None:
        while self._said:
            key, (_, said_at) = next(iter(self._said.items()))
            if said_at >= now - self.keep and len(self._said) <= MOST:
                return
            del self._said[key]
