"""Pushes a helper took, recorded a moment later, or not at all when the
helper's own report comes first.

A pushed assignment goes `pushing` -> `accepted` (with the boot id of the
helper process that took it) -> `running` -> `finished`, each a write. The
helper reports `running` half a second after the container starts, and an
instant container only `finished`: either report moves the assignment on
from `pushing` as well, and records more. So the push's answer is written
`after` (2 s) it came, unless a report of that run reached this seeker
first: the assignment of a run that starts at once is written twice after
its insert, not three times.

A report that overtakes an answer held here records what the answer said
(`accepted_at`, `boot_id`) with its own move, in the same write.

Nothing here decides anything. A seeker that dies holding an answer leaves
its assignment `pushing`, as one that died during the push does, and the
stale-push sweep sends it again (the helper answers with the run it has:
Dispatcher.resume_stale_pushes). An answer recorded late is checked as one
recorded at once was: a task that ended meanwhile has its run stopped
(`stop_requested`), and a helper that restarted meanwhile has lost it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from seeker.control.health import HelperHealth
from seeker.store.assignments import assignment_id
from seeker.store.tasks import TaskStore
from serving.http import ApiError, Unreachable

log = logging.getLogger(__name__)

# how long a push's answer waits for the helper's first report of the run
AFTER = timedelta(seconds=2)

Stop = Callable[[dict, str, int], object]  # (helper, task id, attempt): stop the run there


@dataclass(frozen=True)
class Answer:
    task_id: str
    helper: dict
    attempt: int
    boot_id: str | None
    at: datetime  # when the helper took it
    due: datetime  # when it is written, unless heard of first


class Acceptances:
    def __init__(
        self,
        tasks: TaskStore,
        health: HelperHealth,
        clock: Callable[[], datetime],
        stop: Stop | None = None,
        after: timedelta | None = None,
    ):
        """`after`: how long an answer waits (None: written at once, as a
        seeker without the job that writes them must); `stop`: how a run
        whose task ended during its push is stopped."""
        self.tasks, self.health, self.clock = tasks, health, clock
        self.stop = stop
        self.after = after
        self._waiting: dict[tuple[str, int], Answer] = {}
        self._early: dict[tuple[str, int], datetime] = {}  # reported before answered
        self._lock = threading.Lock()

    def took(self, task_id: str, helper: dict, attempt: int, boot_id: str | None) -> None:
        """The helper process `boot_id` answered the push: it runs it."""
        now = self.clock()
        answer = Answer(task_id, helper, attempt, boot_id, now, now + (self.after or timedelta()))
        if self.after is None:
            self._record(answer)
            return
        with self._lock:
            if self._early.pop((task_id, attempt), None) is None:
                self._waiting[(task_id, attempt)] = answer

    def heard(self, task_id: str, attempt: int) -> dict:
        """The helper reported the run (to this seeker): that report moves
        the assignment on, and records with it what the answer held here
        said (`accepted_at`, `boot_id`: {} when none was held; the answer
        may still be on its way, as an instant run can be reported before
        it is read, and is then not written)."""
        with self._lock:
            answer = self._waiting.pop((task_id, attempt), None)
            if answer is None:
                if self.after is not None:
                    self._early[(task_id, attempt)] = self.clock()
                return {}
        taken = {"accepted_at": answer.at}
        return {**taken, "boot_id": answer.boot_id} if answer.boot_id else taken

    def waiting(self) -> int:
        return len(self._waiting)

    def record_due(self, everything: bool = False) -> int:
        """Write the answers that waited long enough (`everything`: all, as
        a seeker stopping does). Returns how many were written."""
        now = self.clock()
        with self._lock:
            due = [k for k, a in self._waiting.items() if everything or a.due <= now]
            answers = [self._waiting.pop(k) for k in due]
            # a report whose push's answer never came (or not from here)
            old = [
                k
                for k, at in self._early.items()
                if everything or at + (self.after or timedelta()) <= now
            ]
            for k in old:
                del self._early[k]
        recorded = [a for a in answers if self._record(a)]
        self._restarted_since([a for a in recorded if a.at != a.due])
        return len(recorded)

    def close(self) -> int:
        """A seeker stopping: every answer written, now and from now on."""
        self.after = None
        return self.record_due(everything=True)

    def _record(self, a: Answer) -> bool:
        """pushing -> accepted; False when the assignment had moved on (a
        report reached another seeker) or its task ended during the push."""
        helper_id = a.helper["helper_id"]
        if self.tasks.assignment_accepted(a.task_id, helper_id, a.attempt, a.at, a.boot_id):
            return True
        if self.stop is not None and self.tasks.stop_requested(a.task_id, a.attempt):
            # cancelled or decided while this replica was being pushed: stop it
            log.info("task %s ended during the push: stopping attempt %d", a.task_id, a.attempt)
            try:
                self.stop(a.helper, a.task_id, a.attempt)
            except (Unreachable, ApiError) as exc:
                log.warning("could not stop attempt %d of %s: %s", a.attempt, a.task_id, exc)
        return False

    def _restarted_since(self, recorded: list[Answer]) -> None:
        """A helper that registered a new process between an answer and its
        record was not asked about that run (it was `pushing` then): it is
        lost, unless the new process reports it (seeker/control/health.py).
        Each helper is read once, after all of its answers were written: a
        queued run reports nothing within `after`, and the answers of a
        helper's queue fall due together (bench/findings.md 36)."""
        current: dict[str, dict | None] = {}
        for a in recorded:
            helper_id = a.helper["helper_id"]
            if helper_id not in current:
                current[helper_id] = self.health.helpers.get(helper_id)
            helper = current[helper_id]
            if helper is None or a.boot_id is None or helper.get("boot_id") in (None, a.boot_id):
                continue
            key = assignment_id(a.task_id, a.attempt)
            self.health.lose_work(
                helper_id,
                f"helper {helper['name']} restarted after taking it",
                keep=lambda doc, key=key: doc["_id"] != key,
            )
