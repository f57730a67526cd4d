"""When a pushed helper's heartbeat is worth checking against the database.

A heartbeat lists the runs its helper has, and the answer says which of
them to stop (HelperHealth.reconcile: two queries). A busy fleet's beats
list runs at every beat, and almost always the same runs, all still live:
200 helpers running one run each cost 27.6 queries a second standing still
(bench/findings.md, 58). A beat is checked when it may find something:

- its helper reports a run not found fine by the last check here;
- this process heard, since that check, that one of those runs ended, or
  its task (the change feed: a task ended, an assignment finished, lost or
  given back; a stop pushed to the helper may have been lost);
- nothing is heard at all (no change feed follows the database here, or
  it could not say what changed): then every beat is checked, as before;
- at least every `recheck`, whatever was heard.

This decides nothing: a skipped check only defers, to the next beat with
news or to `recheck`, the stop of a run whose stop push was lost and whose
end this process missed."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

# a beat is checked at least this often, whatever was heard
RECHECK = timedelta(minutes=10)
# an end heard this long before a check may have been written after its
# reads (the feed hears a change up to GATHER after it, with its wait)
MARGIN = timedelta(seconds=5)


def task_of(run: str) -> str:
    """The task id of a run's key (an assignment's `_id`, `task_id.attempt`)."""
    return run.rpartition(".")[0]


class BeatChecks:
    def __init__(self, clock: Callable[[], datetime], recheck: timedelta = RECHECK):
        self.clock = clock
        self.recheck = recheck
        # False until a change feed says it reports ends: every beat is checked
        self.listening = False
        self._lock = threading.Lock()
        # helper id -> (when its runs were last checked here, the runs found fine)
        self._checked: dict[str, tuple[datetime, frozenset[str]]] = {}
        # run or task id -> when its end was last heard; in the order heard
        self._ended: dict[str, datetime] = {}
        self._heard: deque[tuple[datetime, str]] = deque()
        self._anything: datetime | None = None  # when anything may have ended

    def ended(self, key: str | None) -> None:
        """A task (its id) or a run (its assignment's id) ended, heard now;
        None: anything may have (heard without knowing what)."""
        now = self.clock()
        with self._lock:
            if key is None:
                self._anything = now
                return
            self._ended[key] = now
            self._heard.append((now, key))
            while self._heard and now - self._heard[0][0] > self.recheck + MARGIN:
                when, old = self._heard.popleft()
                if self._ended.get(old) == when:
                    del self._ended[old]

    def forget(self, helper_id: str) -> None:
        """The helper registered again, or is gone: its next beat is checked."""
        with self._lock:
            self._checked.pop(helper_id, None)

    def due(self, helper_id: str, running: list[str]) -> datetime | None:
        """When the beat's check starts, if it is to be checked now; None if
        it would find nothing new."""
        now = self.clock()
        with self._lock:
            last = self._checked.get(helper_id)
            if not self.listening or last is None:
                return now
            when, fine = last
            if not timedelta(0) <= now - when < self.recheck or not fine.issuperset(running):
                return now
            since = when - MARGIN
            if self._anything is not None and self._anything >= since:
                return now
            for run in running:
                for key in (run, task_of(run)):
                    heard = self._ended.get(key)
                    if heard is not None and heard >= since:
                        return now
        return None

    def done(self, helper_id: str, started: datetime, running: list[str], stop: list[str]) -> None:
        """The check that started at `started` kept the runs it did not stop."""
        with self._lock:
            self._checked[helper_id] = (started, frozenset(running).difference(stop))
