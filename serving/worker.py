"""A background thread that does a step of work whenever woken, and, while
a step leaves work undone (a receiver is down), tries again after a backoff
that doubles up to a ceiling. The outbox, the webhook watcher and the
dispatch loop each run on one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        name: str,
        step: Callable[[], bool],
        first_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ):
        """`step()` returns True when nothing is left to do (then the worker
        sleeps until woken), False to be run again after the backoff."""
        self.name = name
        self.step = step
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> Worker:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        backoff = self.first_backoff
        while not self._stop.is_set():
            try:
                done = self.step()
            except Exception:  # keep the worker alive: the next step retries
                log.exception("%s: step failed", self.name)
                done = False
            if done:
                backoff = self.first_backoff
                self._wake.wait()
            else:
                self._wake.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            self._wake.clear()
