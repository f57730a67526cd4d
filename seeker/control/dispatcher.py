"""Pushing pending tasks to the best helper, and failing over to the next."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from seeker.api.metrics import SeekerMetrics
from seeker.control.health import HelperHealth
from seeker.control.inputs import assignment_inputs
from seeker.models import AssignmentState
from seeker.placement import select
from seeker.placement.capacity import after_placing, helper_views
from seeker.placement.pipeline import reserve_gpus
from seeker.placement.views import HelperView, TaskView
from seeker.store.helpers import HelperStore
from seeker.store.tasks import FINAL, LIVE, TaskStore
from serving.http import ApiError, Unreachable
from serving.worker import Worker

log = logging.getLogger(__name__)

Push = Callable[[dict, dict], "dict | None"]  # (helper document, assignment) -> reply


def is_busy(exc: Exception) -> bool:
    """A full helper (429) was reached fine: not a failed contact."""
    return isinstance(exc, ApiError) and exc.status == 429


def is_unrecognised(exc: Exception) -> bool:
    """The helper does not know the credential the seeker sent: it has not
    read the answer to its registration yet, or it lost its credential and
    will join again. Neither a run nor a sign of life; probes decide."""
    return isinstance(exc, ApiError) and exc.status == 401


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
        metrics: SeekerMetrics | None = None,
        stop: Callable[[dict, str, int], object] | None = None,
    ):
        self.stop = stop  # (helper, task id, attempt): stop a replica on its helper
        self.tasks = tasks
        self.helpers = helpers
        self.push = push
        self.clock = clock
        self.health = health or HelperHealth(helpers, tasks, clock)
        self.liveness = liveness
        self.metrics = metrics or SeekerMetrics()
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
                if task.get("wait_reason") and all_full(views):
                    continue  # it already says why it waits, and no slot is free
                placed += self._dispatch(task, docs, views)
        return placed

    def _dispatch(self, task: dict, docs: dict[str, dict], views: dict[str, HelperView]) -> int:
        """Place the task's open replicas on the best helpers, one per helper."""
        # `attempts` counts every assignment ever made: a task with none
        # has nothing to look up
        assignments = self.tasks.assignments_of(task["_id"]) if task["attempts"] else []
        tv = task_view(task, assignments)
        selection = select(tv, views)
        need, placed = task["open"], 0
        min_helpers = task["spec"].get("min_helpers", 0)
        if task["attempts"] == 0 and len(selection.candidates) < min_helpers:
            reason = (
                f"waiting for {min_helpers} helpers, {len(selection.candidates)} can "
                f"take it now ({selection.wait_reason()})"
            )
            self._wait(task, reason)
            return 0
        for candidate in selection.candidates:
            if placed == need:
                break
            ok, task = self._place(task, candidate.helper, docs, views, tv)
            if task is None:
                return placed  # someone else changed the task: leave it to them
            placed += ok
        if placed < need:
            reason = selection.wait_reason()
            if selection.candidates:
                reason = f"{need - placed} of {need} replicas unplaced; {reason}"
            self._wait(task, reason)
        return placed

    def resume_stale_pushes(self, older_than: timedelta = timedelta(seconds=20)) -> int:
        """Send again the pushes a seeker that died during them never heard
        back from (their assignments stay `pushing`). Safe to repeat: a helper
        answers a push of a run it has with that run, and the channel keeps
        one result per attempt. Returns how many were settled."""
        settled = 0
        with self._lock:
            for a in self.tasks.stale_pushes(self.clock() - older_than):
                task, helper = self.tasks.get(a["task_id"]), self.helpers.get(a["helper_id"])
                reason = "the seeker stopped during the push"
                if task is None or helper is None or task["state"] in FINAL:
                    self.tasks.push_failed(a["task_id"], a["attempt"], reason, self.clock())
                    settled += 1
                    continue
                payload = assignment_payload(task, helper, a["attempt"], a.get("reservation", {}))
                try:
                    reply = self.push(helper, payload)
                except (Unreachable, ApiError) as exc:
                    log.warning(
                        "task %s: resent push to %s failed: %s", a["task_id"], helper["name"], exc
                    )
                    self.tasks.push_failed(
                        a["task_id"], a["attempt"], f"{reason}; {exc}", self.clock()
                    )
                else:
                    self.tasks.assignment_accepted(
                        a["task_id"],
                        helper["helper_id"],
                        a["attempt"],
                        self.clock(),
                        (reply or {}).get("boot_id"),
                    )
                settled += 1
        return settled

    def _wait(self, task: dict, reason: str) -> None:
        """Record why the task waits, when that changed (a write per pass
        per waiting task would otherwise be the busiest thing the seeker does)."""
        if task.get("wait_reason") != reason:
            self.tasks.set_wait_reason(task["_id"], reason, self.clock())

    def _place(
        self,
        task: dict,
        view: HelperView,
        docs: dict[str, dict],
        views: dict[str, HelperView],
        tv: TaskView,
    ) -> tuple[int, dict | None]:
        """Assign and push one replica; returns (1 if it runs, the task now)."""
        helper = docs[view.helper_id]
        reservation = {
            "cpus": tv.cpus,
            "memory": tv.memory,
            "gpus": tv.gpus,
            "gpu_indices": reserve_gpus(tv, view),
        }
        assignment = self.tasks.assign(task, helper, self.clock(), reservation)
        if assignment is None:
            return 0, None
        attempt = assignment["attempt"]
        try:
            reply = self.push(helper, assignment_payload(task, helper, attempt, reservation))
        except (Unreachable, ApiError) as exc:
            reason = f"push to {helper['name']} failed: {exc}"
            log.warning("task %s: %s", task["_id"], reason)
            self.metrics.push_failed(exc)
            # first give the replica back, then count the failure: a purge
            # would otherwise mark the assignment being pushed as lost
            task = self.tasks.push_failed(task["_id"], attempt, reason, self.clock())
            if is_refusal(exc):
                self.health.contact_ok(helper["helper_id"])
            elif is_unrecognised(exc):
                views[helper["helper_id"]] = replace(view, running=view.slots)
            elif is_busy(exc):
                self.health.contact_ok(helper["helper_id"])
                views[helper["helper_id"]] = replace(view, running=view.slots)
            elif self.health.contact_failed(helper["helper_id"], helper["name"], reason):
                views.pop(helper["helper_id"], None)
            return 0, task
        boot_id = (reply or {}).get("boot_id")
        self.tasks.assignment_accepted(
            task["_id"], helper["helper_id"], attempt, self.clock(), boot_id
        )
        self.health.contact_ok(helper["helper_id"])
        self.metrics.push_accepted(task["created_at"], self.clock())
        views[helper["helper_id"]] = after_placing(view, reservation)
        log.info("task %s attempt %d -> %s", task["_id"], attempt, helper["name"])
        now = self.tasks.get(task["_id"])
        if now["state"] in FINAL and self.stop is not None:
            # cancelled or decided while this replica was being pushed: stop it
            log.info("task %s ended during the push: stopping attempt %d", task["_id"], attempt)
            try:
                self.stop(helper, task["_id"], attempt)
            except (Unreachable, ApiError) as exc:
                log.warning("could not stop attempt %d of %s: %s", attempt, task["_id"], exc)
        return 1, now


def all_full(views: dict[str, HelperView]) -> bool:
    """Some helper is online and every online helper's slots are taken."""
    online = [v for v in views.values() if v.online]
    return bool(online) and all(v.running >= v.slots for v in online)


def task_view(task: dict, assignments: list[dict]) -> TaskView:
    """A replicated task goes only to helpers that have not run it yet; a
    single one may retry where it failed (with a penalty)."""
    if task["spec"].get("replicas", 1) > 1:
        busy = {AssignmentState.PUSH_FAILED.value}
        running_on = {a["helper_id"] for a in assignments if a["state"] not in busy}
    else:
        running_on = {a["helper_id"] for a in assignments if a["state"] in LIVE}
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
        "inputs": assignment_inputs(task),  # the seeker's push adds a grant to each
        "array_id": task.get("array_id"),
        "array_index": task.get("array_index"),
    }


class DispatchLoop(Worker):
    """Runs `dispatch_pending` on a thread whenever kicked: on submit, when a
    helper registers, when an assignment ends, and by the periodic sweep."""

    def __init__(self, dispatcher: Dispatcher | None):
        self.dispatcher = dispatcher
        super().__init__("dispatch", self._pass)

    def kick(self) -> None:
        self.wake()

    def _pass(self) -> bool:
        self.dispatcher.dispatch_pending()
        return True
