"""Calls made a little later, all on one thread (the standard library's
`sched`), each under a key by which it can be called off: one thread for
any number of them, where a `threading.Timer` starts a thread for each."""

from __future__ import annotations

import itertools
import logging
import sched
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Later:
    def __init__(self, name: str):
        self.name = name
        self._wake = threading.Event()
        self._scheduler = sched.scheduler(time.monotonic, self._sleep)
        self._lock = threading.Lock()
        self._calls: dict[str, sched.Event] = {}
        # numbers each call (its sched priority): tells it from one that replaced it
        self._made = itertools.count()
        self._thread: threading.Thread | None = None

    def call(self, key: str, delay: float, fn: Callable[..., object], *args) -> None:
        """Call `fn(*args)` in `delay` seconds, unless `cancel(key)` comes
        first (a call already under `key` is replaced)."""
        with self._lock:
            self._cancel(key)
            made = next(self._made)
            self._calls[key] = self._scheduler.enter(delay, made, self._fire, (key, made, fn, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        self._wake.set()  # the thread looks at its queue again

    def cancel(self, key: str) -> bool:
        """Call off the call under `key`; False if there is none (made already)."""
        with self._lock:
            return self._cancel(key)

    def pending(self) -> int:
        with self._lock:
            return len(self._calls)

    def _cancel(self, key: str) -> bool:
        event = self._calls.pop(key, None)
        if event is None:
            return False
        try:
            self._scheduler.cancel(event)
        except ValueError:  # being made right now
            return False
        return True

    def _fire(self, key: str, made: int, fn: Callable[..., object], args: tuple) -> None:
        with self._lock:
            if key in self._calls and self._calls[key].priority == made:
                del self._calls[key]  # not a call that replaced this one meanwhile
        try:
            fn(*args)
        except Exception:  # one failed call must not stop the others
            log.exception("%s: %s failed", self.name, key)

    def _sleep(self, seconds: float) -> None:
        if self._wake.wait(seconds):
            self._wake.clear()

    def _run(self) -> None:
        while True:
            self._scheduler.run()  # returns when nothing is left to call
            self._sleep(None)
