"""The simulated fleet's heartbeats and counters (bench/fleet.py).

A real helper re-registers on a thread of its own, `heartbeat` seconds
after its last registration ended (helper/agent.py `_heartbeat`). Here a
pool of threads does it for thousands of helpers: a schedule (a heap of due
times) hands each helper's next registration to the pool when it is due,
and the registration, once answered, puts the helper back on the schedule
`every(i)` seconds later (its interval, or a random point between the old
and the new one right after the interval grew: helper/beats.py
`next_beat_in`). Each helper's first beat is due `every` seconds after its
own registration, as a real helper's is, while others still join
(spreading them over one interval from the end of the join, as this did
before, made a helper that joined early beat up to a whole join late, and
the seeker rightly probed it as silent). When the seeker answers slower
than the fleet beats, due registrations wait for a free thread: `late_s`
says how long (a real helper would be as late, waiting for its own
answer)."""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)


class Counters:
    """What the fleet did, for the benchmarks: written to a JSON file."""

    def __init__(self):
        self._lock = threading.Lock()
        self.values: dict[str, float] = {
            "registrations": 0,
            "registration_failures": 0,
            "light_beats": 0,  # light heartbeats the seeker answered
            "beats_left_out": 0,  # by pushed helpers whose reports reached the seeker
            "beats_due_late": 0,  # due registrations that waited over 1 s for a thread
            "late_s_max": 0.0,
            "polls": 0,  # answered polls
            "poll_failures": 0,
            "polling": 0,  # polls waiting for their answer now
            "offers_taken": 0,
            "offers_refused": 0,
        }

    def add(self, key: str, n: float = 1) -> None:
        with self._lock:
            self.values[key] += n

    def late(self, seconds: float) -> None:
        with self._lock:
            if seconds > 1:
                self.values["beats_due_late"] += 1
            self.values["late_s_max"] = max(self.values["late_s_max"], seconds)

    def write(self, path: Path) -> None:
        with self._lock:
            text = json.dumps(self.values)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def read_counters(path: Path) -> dict[str, float]:
    """The fleet's counters as last written (empty before the first write)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


class Heartbeats:
    """`register(i)` for each helper i: all at once on `join()`, then every
    `every(i)` seconds after each one's previous beat ended (the interval
    each helper was asked for)."""

    def __init__(
        self,
        count: int,
        register: Callable[[int], bool],
        every: Callable[[int], float],
        threads: int,
        counters: Counters,
    ):
        self.count = count
        self.register = register
        self.every = every
        self.counters = counters
        self.threads = threads
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="beat")
        self._due: list[tuple[float, int]] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()

    def join(self, then: Callable[[int], None] = lambda i: None) -> None:
        """Register every helper at once (as many at a time as there are
        threads, on a pool apart from the beats'); `then(i)` runs after
        helper i registered, and its beats start. Returns when all did; a
        helper whose registration failed is tried again."""

        def first(i: int) -> None:
            while not self._stop.is_set() and not self._beat(i):
                self._stop.wait(1)
            then(i)
            with self._cond:  # its beats start now, while others still join
                heapq.heappush(self._due, (time.monotonic() + self.every(i), i))
                self._cond.notify()

        threading.Thread(target=self.run, name="heartbeats", daemon=True).start()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="join") as joining:
            list(joining.map(first, range(self.count)))

    def run(self) -> None:
        """Hand due registrations to the pool until stopped (join() runs it)."""
        while not self._stop.is_set():
            with self._cond:
                now = time.monotonic()
                if not self._due or self._due[0][0] > now:
                    wait = self._due[0][0] - now if self._due else 1.0
                    self._cond.wait(min(wait, 1.0))
                    continue
                due, i = heapq.heappop(self._due)
            self.pool.submit(self._scheduled, due, i)

    def _scheduled(self, due: float, i: int) -> None:
        self.counters.late(time.monotonic() - due)
        self._beat(i)
        with self._cond:
            heapq.heappush(self._due, (time.monotonic() + self.every(i), i))
            self._cond.notify()

    def _beat(self, i: int) -> bool:
        try:
            ok = self.register(i)
        except Exception as exc:  # keep beating; the seeker may be busy
            log.warning("registration of helper %d failed: %s", i, exc)
            ok = False
        self.counters.add("registrations" if ok else "registration_failures")
        return ok

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self.pool.shutdown(wait=False, cancel_futures=True)
