"""Pushing pending tasks to the best helper, and failing over to the next."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from seeker.scheduler import HelperView, select
from seeker.store import HelperStore, TaskStore
from serving.http import ApiError, Unreachable

log = logging.getLogger(__name__)

Push = Callable[[dict, dict], None]  # (helper document, assignment payload)


def is_busy(exc: Exception) -> bool:
    """A full helper (429) was reached fine: not a failed contact."""
    return isinstance(exc, ApiError) and exc.status == 429


class Dispatcher:
    def __init__(
        self,
        tasks: TaskStore,
        helpers: HelperStore,
        push: Push,
        clock: Callable[[], datetime],
        purge_after: int = 3,
    ):
        self.tasks = tasks
        self.helpers = helpers
        self.push = push
        self.clock = clock
        self.purge_after = purge_after
        self._lock = threading.Lock()

    def dispatch_pending(self) -> int:
        """Try to place every pending task; returns how many were placed."""
        placed = 0
        with self._lock:  # one placement pass at a time: no oversubscription
            for task in self.tasks.pending():
                placed += self._dispatch(task)
        return placed

    def _views(self) -> tuple[dict[str, dict], list[HelperView]]:
        docs = {h["helper_id"]: h for h in self.helpers.list()}
        running = self.tasks.live_assignments()
        return docs, [HelperView.from_doc(d, running.get(i, 0)) for i, d in docs.items()]

    def _dispatch(self, task: dict) -> int:
        docs, views = self._views()
        selection = select(task["spec"]["resources"], views, seed=task["_id"])
        for candidate in selection.candidates:
            helper = docs[candidate.helper.helper_id]
            assignment = self.tasks.assign(task, helper, self.clock())
            if assignment is None:
                return 0  # someone else changed the task: leave it to them
            attempt = assignment["attempt"]
            try:
                self.push(helper, assignment_payload(task, helper, attempt))
            except (Unreachable, ApiError) as exc:
                reason = f"push to {helper['name']} failed: {exc}"
                log.warning("task %s: %s", task["_id"], reason)
                task = self.tasks.push_failed(task["_id"], attempt, reason, self.clock())
                if is_busy(exc):
                    self.helpers.contact_ok(helper["helper_id"], self.clock())
                else:
                    self._count_failure(helper, reason)
                if task is None:
                    return 0
                continue
            self.tasks.assignment_accepted(task["_id"], helper["helper_id"], attempt, self.clock())
            self.helpers.contact_ok(helper["helper_id"], self.clock())
            log.info("task %s attempt %d -> %s", task["_id"], attempt, helper["name"])
            return 1
        reason = selection.wait_reason()
        if selection.candidates:
            reason = "every feasible helper failed to take it; " + reason
        self.tasks.set_wait_reason(task["_id"], reason, self.clock())
        return 0

    def _count_failure(self, helper: dict, reason: str) -> None:
        failures = self.helpers.contact_failed(helper["helper_id"], self.clock(), reason)
        if failures is not None and failures >= self.purge_after:
            log.warning("purging helper %s after %d failed contacts", helper["name"], failures)
            self.helpers.remove(helper["helper_id"])


def assignment_payload(task: dict, helper: dict, attempt: int) -> dict:
    spec = task["spec"]
    return {
        "task_id": task["_id"],
        "attempt": attempt,
        "helper_id": helper["helper_id"],
        "image": spec["image"],
        "command": spec.get("command", []),
        "env": spec.get("env", {}),
        "resources": {k: spec["resources"].get(k, 0) for k in ("cpus", "memory", "gpus")},
        "timeout": spec.get("timeout"),
    }


class DispatchLoop:
    """Runs `dispatch_pending` on a thread whenever kicked: on submit, when a
    helper registers, when an assignment ends, and by the periodic sweep."""

    def __init__(self, dispatcher: Dispatcher):
        self.dispatcher = dispatcher
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dispatch", daemon=True)

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> DispatchLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.dispatcher.dispatch_pending()
            except Exception:  # keep the loop alive; the next pass retries
                log.exception("dispatch pass failed")
