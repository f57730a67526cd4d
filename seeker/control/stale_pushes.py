"""A pass's push, and the pushes a seeker that died during them never heard
back from, sent again by the lease holder. A half of Dispatcher
(seeker/control/dispatcher.py), which holds the pass's lock, the push and
the payload it uses."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from datetime import timedelta

from seeker.control.contact import PushOutcome, classify
from seeker.models import TaskState
from serving.http import ApiError, Unreachable

log = logging.getLogger("seeker.control.dispatcher")  # its lines stay the dispatcher's


class StalePushes:
    """What Dispatcher does with its pushes: a pass's, and those left `pushing`."""

    def resume_stale_pushes(self, older_than: timedelta = timedelta(seconds=20)) -> int:
        """Send again the pushes a seeker that died during them never heard
        back from (their assignments stay `pushing`). Safe to repeat: a helper
        answers a push of a run it has with that run, and the channel keeps
        one result per attempt. Returns how many were settled."""
        settled = 0
        with self._lock:
            epoch = self.health.lease_epoch()
            for a in self.tasks.stale_pushes(self.clock() - older_than):
                task, helper = self.tasks.get(a["task_id"]), self.helpers.get(a["helper_id"])
                reason = "the seeker stopped during the push"
                if task is None or helper is None or task["state"] in TaskState.final():
                    now = self.clock()
                    self.tasks.push_failed(a["task_id"], a["attempt"], reason, now, None, epoch)
                    settled += 1
                    continue
                payload = self.payload(task, helper, a["attempt"], a.get("reservation", {}))
                try:
                    reply = self.push(helper, payload)
                except (Unreachable, ApiError) as exc:
                    log.warning(
                        "task %s: resent push to %s failed: %s", a["task_id"], helper["name"], exc
                    )
                    self.tasks.push_failed(
                        a["task_id"], a["attempt"], f"{reason}; {exc}", self.clock(), None, epoch
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

    def _push(
        self, task: dict, helper: dict, attempt: int, reservation: dict
    ) -> tuple[PushOutcome, dict | None]:
        """Push one assignment and record how it went; returns the outcome
        and, when it failed, the task as the failure left it."""
        task_id = task["_id"]
        try:
            reply = self.push(helper, self.payload(task, helper, attempt, reservation))
        except (Unreachable, ApiError) as exc:
            return self._push_failed(task_id, helper, attempt, exc)
        # recorded now, or a moment later unless the helper reports the run first
        self.acceptances.took(task_id, helper, attempt, (reply or {}).get("boot_id"))
        self.health.contact_ok(helper["helper_id"])
        self.metrics.push_accepted(task["created_at"], self.clock())
        log.info("task %s attempt %d -> %s", task_id, attempt, helper["name"])
        return PushOutcome.ACCEPTED, None

    def _push_failed(
        self, task_id: str, helper: dict, attempt: int, exc: Exception
    ) -> tuple[PushOutcome, dict | None]:
        reason = f"push to {helper['name']} failed: {exc}"
        log.warning("task %s: %s", task_id, reason)
        self.metrics.push_failed(exc)
        # first give the replica back, then count the failure: a purge
        # would otherwise mark the assignment being pushed as lost
        task = self.tasks.push_failed(task_id, attempt, reason, self.clock())
        outcome = classify(exc)
        if outcome in (PushOutcome.REFUSED, PushOutcome.BUSY):
            self.health.contact_ok(helper["helper_id"])
        elif outcome == PushOutcome.FAILED and self.health.contact_failed(
            helper["helper_id"], helper["name"], reason
        ):
            outcome = PushOutcome.PURGED
        return outcome, task

    def _pushed(self, sent: Future) -> None:
        """A push made apart from the pass ended: if it failed, its replica
        is open again, and the next pass places it (elsewhere first)."""
        if sent.exception() is not None:
            log.error("a push failed unexpectedly", exc_info=sent.exception())
            self.health.kick()
        elif sent.result()[0] != PushOutcome.ACCEPTED:
            self.health.kick()
