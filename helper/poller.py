"""Pull mode (`helper start --pull`): the helper takes its work over a
long poll to the seeker, and makes only outbound connections. A part of
HelperAgent (helper/agent.py), whose registration, executor and clients
it uses."""

from __future__ import annotations

import logging

from helper.models import Assignment
from serving.errors import Busy, Conflict, Forbidden
from serving.http import ApiError, Unreachable

log = logging.getLogger(__name__)
POLL_SLACK = 15.0  # seconds a poll may take beyond its wait (its read timeout)


class PullMode:
    """The poll loop, and what the helper does with its answer."""

    def _poll_loop(self) -> None:
        """Long-poll the seeker for work until stopped; reconnect (with a
        backoff up to 5 s) when it cannot be reached."""
        backoff = 0.5
        while not self._stop.is_set():
            if not self._registered.wait(1):
                continue
            try:
                work = self.poll_once()
            except (Unreachable, ApiError) as exc:
                if self._stop.is_set():
                    return  # stop() ended the poll (its client was closed)
                if isinstance(exc, ApiError) and exc.status in (401, 404, 409):
                    self.register()  # purged, removed or registered otherwise: join again
                log.warning("poll of %s failed: %s", self.cfg.seeker_url, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.5
            if self._stop.is_set():
                return  # work offered meanwhile is not taken: it goes elsewhere
            self.handle(work)

    def poll_once(self) -> dict:
        """One long poll: this helper's work, or nothing once the wait is over."""
        stopping = self.executor.stopping_keys()
        body = {
            "boot_id": self.boot_id,
            # a run being stopped is not listed as running: the seeker would
            # say to stop it at every poll, and each poll answer at once
            "running": [k for k in self.executor.running_keys() if k not in stopping],
            "done": [*self.executor.done_keys(), *stopping],
            "wait": self.poll_wait_now(),
            "heartbeat": self.cfg.heartbeat,  # it beats that often besides
        }
        work = self.poller.poll_work(
            self.helper_id, body, timeout=self.poll_wait_now() + POLL_SLACK
        )
        self._polled_at = self.clock()
        self._asked_wait = work.get("wait") or self._asked_wait
        self._asked_heartbeat = work.get("heartbeat") or self._asked_heartbeat
        return work

    def handle(self, work: dict) -> None:
        """Stop what the seeker says to stop; take each offer (acknowledged
        before it runs), or tell the seeker why not."""
        self._stop_runs(work.get("stop") or [])
        for item in work.get("assignments") or []:
            a = Assignment.model_validate(item)
            try:
                self.executor.take(a, self._acknowledge)
            except (Busy, Forbidden, Conflict) as exc:
                self._refuse(a, exc)
            except (Unreachable, ApiError) as exc:  # it is handed out again
                log.warning("could not take %s: %s", a.key, exc)

    def _acknowledge(self, a: Assignment) -> bool:
        answer = self.seeker.report(
            a.task_id,
            {
                "helper_id": self.helper_id,
                "attempt": a.attempt,
                "state": "accepted",
                "boot_id": self.boot_id,
            },
        )
        return bool((answer or {}).get("run"))

    def _refuse(self, a: Assignment, why: Exception) -> None:
        log.info("refusing %s: %s", a.key, why)
        try:
            self.seeker.report(
                a.task_id,
                {
                    "helper_id": self.helper_id,
                    "attempt": a.attempt,
                    "state": "push_failed",
                    "error": f"{self.name} refused it: {why}",
                },
            )
        except (Unreachable, ApiError) as exc:  # it expires on the seeker's side
            log.warning("could not refuse %s: %s", a.key, exc)
