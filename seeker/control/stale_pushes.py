"""Pushes a seeker that died during them never heard back from: sent again
by the lease holder. A half of Dispatcher (seeker/control/dispatcher.py),
which holds the pass's lock, the push and the payload it uses."""

from __future__ import annotations

import logging
from datetime import timedelta

from seeker.models import TaskState
from serving.http import ApiError, Unreachable

log = logging.getLogger("seeker.control.dispatcher")  # its lines stay the dispatcher's


class StalePushes:
    """What Dispatcher does with the pushes left `pushing`."""

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
