"""Pushing pending tasks to the best helper, and failing over to the next."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from seeker.capacity import after_placing, helper_views
from seeker.health import HelperHealth
from seeker.models import AssignmentState
from seeker.scheduler import HelperView, TaskView, reserve_gpus, select
from seeker.store import HelperStore, TaskStore
from serving.http import ApiError, Unreachable

log = logging.getLogger(__name__)

Push = Callable[[dict, dict], "dict | None"]  # (helper document, assignment) -> reply


def is_busy(exc: Exception) -> bool:
    """A full helper (429) was reached fine: not a failed contact."""
    return isinstance(exc, ApiError) and exc.status == 429


def is_refusal(exc: Exception) -> bool:
    """The helper answered that it will not run this task (its image or mount
    policy): not a failed contact either."""
    return isinstance(exc, ApiError) and exc.status == 403


class Dispatcher:
    def __init__(
        self,
        tasks: TaskStore,
        helpers: HelperStore,
        push: Push,
        clock: Callable[[], datetime],
        health: HelperHealth | None = None,
        liveness: timedelta = timedelta(seconds=45),
    ):
        self.tasks = tasks
        self.helpers = helpers
        self.push = push
        self.clock = clock
        self.health = health or HelperHealth(helpers, tasks, clock)
        self.liveness = liveness
        self._lock = threading.Lock()

    def dispatch_pending(self) -> int:
        """Try to place every pending task; returns how many were placed."""
        placed = 0
        with self._lock:  # one placement pass at a time: no oversubscription
            pending = self.tasks.pending()
            if not pending:
                return 0
            docs = {h["helper_id"]: h for h in self.helpers.list()}
            views = helper_views(
                list(docs.values()), self.tasks.live_assignment_docs(), self.clock(), self.liveness
            )
            for task in pending:
                placed += self._dispatch(task, docs, views)
        return placed

    def _dispatch(self, task: dict, docs: dict[str, dict], views: dict[str, HelperView]) -> int:
        tv = task_view(task, self.tasks.assignments_of(task["_id"]))
        selection = select(tv, list(views.values()))
        for candidate in selection.candidates:
            helper = docs[candidate.helper.helper_id]
            reservation = {
                "cpus": tv.cpus,
                "memory": tv.memory,
                "gpus": tv.gpus,
                "gpu_indices": reserve_gpus(tv, candidate.helper),
            }
            assignment = self.tasks.assign(task, helper, self.clock(), reservation)
            if assignment is None:
                return 0  # someone else changed the task: leave it to them
            attempt = assignment["attempt"]
            try:
                reply = self.push(helper, assignment_payload(task, helper, attempt, reservation))
            except (Unreachable, ApiError) as exc:
                reason = f"push to {helper['name']} failed: {exc}"
                log.warning("task %s: %s", task["_id"], reason)
                task = self.tasks.push_failed(task["_id"], attempt, reason, self.clock())
                if is_refusal(exc):
                    self.health.contact_ok(helper["helper_id"])
                elif is_busy(exc):
                    self.health.contact_ok(helper["helper_id"])
                    views[helper["helper_id"]] = replace(
                        candidate.helper, running=candidate.helper.slots
                    )
                elif self.health.contact_failed(helper["helper_id"], helper["name"], reason):
                    views.pop(helper["helper_id"], None)
                if task is None:
                    return 0
                continue
            boot_id = (reply or {}).get("boot_id")
            self.tasks.assignment_accepted(
                task["_id"], helper["helper_id"], attempt, self.clock(), boot_id
            )
            self.health.contact_ok(helper["helper_id"])
            views[helper["helper_id"]] = after_placing(candidate.helper, reservation)
            log.info("task %s attempt %d -> %s", task["_id"], attempt, helper["name"])
            return 1
        reason = selection.wait_reason()
        if selection.candidates:
            reason = "every feasible helper failed to take it; " + reason
        self.tasks.set_wait_reason(task["_id"], reason, self.clock())
        return 0


def task_view(task: dict, assignments: list[dict]) -> TaskView:
    live = {
        AssignmentState.PUSHING.value,
        AssignmentState.ACCEPTED.value,
        AssignmentState.RUNNING.value,
    }
    running_on = {a["helper_id"] for a in assignments if a["state"] in live}
    failed_on = {
        a["helper_id"]
        for a in assignments
        if a["state"] == AssignmentState.FINISHED.value and a.get("status") != "succeeded"
    }
    return TaskView.from_spec(task["_id"], task["spec"], running_on, failed_on)


def assignment_payload(task: dict, helper: dict, attempt: int, reservation: dict) -> dict:
    spec = task["spec"]
    return {
        "task_id": task["_id"],
        "attempt": attempt,
        "helper_id": helper["helper_id"],
        "image": spec["image"],
        "command": spec.get("command", []),
        "env": spec.get("env", {}),
        "resources": {k: reservation.get(k, 0) for k in ("cpus", "memory", "gpus")},
        "gpu_indices": reservation.get("gpu_indices", []),
        "timeout": spec.get("timeout"),
        "pull": spec.get("pull", "if-missing"),
        "capabilities": spec.get("capabilities", []),
        "mounts": spec.get("mounts", []),
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
