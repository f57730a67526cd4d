"""Threads kept after their call and handed the next one: starting a thread
cost 98-130 µs of CPU here, handing a call to one that waits 22-67 µs
(bench/findings.md 39). Unlike `concurrent.futures.ThreadPoolExecutor`,
whose threads the interpreter joins at exit, these are daemon threads: a
process that stops does not wait for a call that runs for hours (a
container's run, which a restarted helper adopts). There are as many as
calls made at once; one idle for `idle_s` ends."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

IDLE = "idle"


class DaemonThreads:
    def __init__(self, prefix: str, idle_s: float = 60.0):
        """`prefix`: each thread is named `prefix-NAME` while it makes a
        call given NAME, `prefix-idle` while it waits for one."""
        self.prefix = prefix
        self.idle_s = idle_s
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)
        self._under_way: set[str] = set()
        self._idle = 0  # threads waiting for a call that no call has claimed

    def call(self, name: str, fn: Callable[..., object], *args) -> None:
        """Call `fn(*args)` on a thread named `prefix-name`: an idle one, or
        a new one if none is idle. An exception is logged. `name` is the
        call's while it is under way (wait() tells its end by it)."""
        with self._lock:
            claimed = self._idle > 0
            if claimed:
                self._idle -= 1
            self._under_way.add(name)
        self._calls.put((name, fn, args))
        if not claimed:
            threading.Thread(target=self._serve, name=f"{self.prefix}-{name}", daemon=True).start()

    def idle(self) -> int:
        with self._lock:
            return self._idle

    def wait(self, name: str, timeout: float) -> bool:
        """Wait until the call named `name` has returned (True at once if
        none is under way); False if it has not within `timeout` seconds."""
        with self._ended:
            return self._ended.wait_for(lambda: name not in self._under_way, timeout)

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                name, fn, args = self._calls.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # no call is on its way to this thread
                        self._idle -= 1
                        return
                continue  # a call claimed an idle thread just now: it is this one's
            me.name = f"{self.prefix}-{name}"
            try:
                fn(*args)
            except Exception:
                log.exception("%s failed", me.name)
            finally:
                me.name = f"{self.prefix}-{IDLE}"
                with self._lock:
                    self._idle += 1
                    self._under_way.discard(name)
                    self._ended.notify_all()
