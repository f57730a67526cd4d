"""The seeker's domain operations, independent of HTTP."""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import quote

from channel.models import ResultStatus
from seeker.control.contact import InlinePushes
from seeker.control.credentials import HelperCredentials, require_own
from seeker.control.echoes import Echoes
from seeker.control.health import HelperHealth
from seeker.control.inputs import InputBroker
from seeker.control.mailbox import Mailbox
from seeker.control.registry import HelperOperations
from seeker.control.workflows import Workflows, array_answer, one_task, parse_indices
from seeker.helper_models import AssignmentEvent, HelperMode
from seeker.models import AssignmentState, TaskSpec, TaskState
from seeker.placement.outcome import (
    decide,
    no_helper_left,
    ran_on,
    summary,
    wants_a_new_helper,
)
from seeker.store.assignments import assignment_id
from seeker.store.events import TASK_CANCELLED, TASK_FAILED, TASK_SUCCEEDED, EventLog
from seeker.store.helpers import HelperStore
from seeker.store.task_document import cursor_of, parse_cursor, task_json
from seeker.store.tasks import TaskStore
from seeker.store.workflows import WorkflowStore
from serving.errors import Conflict, NotFound, Unavailable
from serving.http import ApiError, Unreachable
from serving.principals import Principal

log = logging.getLogger(__name__)
# what a helper's report of progress moves its assignment to (one conditional update)
PROGRESS = {
    AssignmentState.FETCHING: TaskStore.assignment_fetching,
    AssignmentState.PULLING: TaskStore.assignment_pulling,
    AssignmentState.RUNNING: TaskStore.assignment_running,
}


class LRU(OrderedDict):
    """A dict that forgets its oldest entries past `size`."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        if len(self) > self.size:
            self.popitem(last=False)


class Seeker(HelperOperations):
    def __init__(
        self,
        tasks: TaskStore,
        helpers: HelperStore,
        clock: Callable[[], datetime],
        kick: Callable[[], None] = lambda: None,
        channel=None,
        helper_client=None,
        health: HelperHealth | None = None,
        events: EventLog | None = None,
        credentials: HelperCredentials | None = None,
        mailbox: Mailbox | None = None,
        pushes=None,
        poll_wait: float = 25.0,
        parked: Callable[[str], int] = lambda helper_id: 0,
        poll_grace: timedelta = timedelta(seconds=5),
        later: Callable[[float, Callable[[], None]], object] = lambda seconds, job: None,
        room: Callable[[], None] | None = None,
        heard: Callable[[str, int], dict] = lambda task_id, attempt: {},
        echoes: Echoes | None = None,
        joined: Callable[[list[str]], None] | None = None,
    ):
        """`joined(task_ids)`: tasks were submitted here (default: `kick`).
        `heard(task_id, attempt)`: a helper reported a run, whose push's
        answer need not be recorded apart: what that answer said, to record
        with the report (seeker/control/acceptances.py).
        Pull mode: `mailbox` is where pulling helpers find their work;
        a poll waits `poll_wait` s at most (or a heartbeat's interval, when
        the fleet makes it longer); `parked(helper_id)` counts its
        polls waiting in this process; `later(seconds, job)` runs a job once
        (the check, `poll_grace` after a poll connection dropped, that the
        helper came back). `pushes`: where requests to pushed helpers (stops)
        are made, off the caller's thread (default: inline). `echoes`: told
        of the submits and assignments' ends written here, which kick
        placement here, so that the change feed's copy of them does not."""
        self.mailbox = mailbox
        self.pushes = pushes or InlinePushes()
        self.poll_wait = poll_wait
        self.parked = parked
        self.poll_grace = poll_grace
        self.later = later
        self.heard = heard
        self.echoes = Echoes() if echoes is None else echoes
        # room made (a slot freed, a helper joined): kick the dispatcher (a
        # seeker process: only if its last pass left a task waiting for room)
        self.room = room or kick
        self.events = events
        self.credentials = credentials or HelperCredentials(secrets.token_bytes(32), helpers, clock)
        self.tasks = tasks
        self.helpers = helpers
        self.clock = clock
        self.kick = kick  # wakes the dispatcher
        self.channel = channel  # ChannelClient, to read results
        self.helper_client = helper_client  # (helper document) -> HelperClient
        self.health = health or HelperHealth(helpers, tasks, clock, kick=kick)
        self._polled: dict[str, datetime] = {}  # pull mode: when each last polled here
        # what the event of a task's end names (its name, image), for tasks
        # submitted here: saves reading the task back when it succeeds
        self._specs: LRU = LRU(10_000)
        self.inputs = InputBroker(channel)  # inputs, dependencies and arrays:
        self.workflows = Workflows(  # seeker/control/workflows.py
            WorkflowStore(tasks.tasks, tasks.assignments),
            self.inputs,
            clock,
            kick,
            self._publish,
            self._stop_assignment,
            self.echoes,
            joined,
        )

    # --- tasks ---------------------------------------------------------------

    def submit(self, spec: TaskSpec) -> dict:
        task = one_task(self.workflows.submit(spec))
        self._specs[task["task_id"]] = {"name": spec.name, "image": spec.image}
        return task

    def submit_array(self, spec: TaskSpec, array: int | str) -> dict:
        return array_answer(self.workflows.submit(spec, parse_indices(array)))

    def task(self, task_id: str) -> dict:
        doc = self.tasks.get(task_id)
        if doc is None:
            raise NotFound("no such task", task_id)
        return task_json(doc, self.tasks.assignments_of(task_id))

    def list_tasks(
        self, state: str | None, limit: int, after: str | None = None, array_id: str | None = None
    ) -> tuple[list[dict], str | None]:
        """A page of tasks, newest first, and the cursor of the next page
        (None on the last). ValueError for a cursor that is not one."""
        cursor = parse_cursor(after) if after else None
        docs = self.tasks.list(state, limit, cursor, array_id, now=self.clock())
        more = len(docs) == limit
        return [task_json(d) for d in docs], cursor_of(docs[-1]) if docs and more else None

    def cancel(self, task_id: str) -> dict:
        before = self.tasks.get(task_id)
        if before is None:
            raise NotFound("no such task", task_id)
        doc = self.tasks.cancel(task_id, self.clock())
        if doc is None:
            raise Conflict(
                f"task already {before['state']}", "only unfinished tasks can be cancelled"
            )
        assignments = self.tasks.assignments_of(task_id)
        self._stop_replicas(task_id, assignments)
        self._publish(TASK_CANCELLED, doc)
        self.workflows.ended(doc)  # what runs after it is cancelled too
        return task_json(doc, assignments)

    def _publish(self, kind: str, task: dict) -> None:
        if self.events is not None:
            self.events.publish(
                kind,
                task_id=task["_id"],
                name=task["spec"].get("name"),
                image=task["spec"]["image"],
                state=task["state"],
                result=task.get("result"),
                error=task.get("error"),
            )

    def _stop_replicas(self, task_id: str, assignments: list[dict]) -> None:
        """Stop the live replicas of a task that ended: those its helpers
        have are stopped there, those still on their way are withdrawn
        (TaskStore.cancel has withdrawn those of a cancelled task)."""
        on_the_way = [a["_id"] for a in assignments if a["state"] == AssignmentState.PUSHING]
        self.tasks.withdraw(on_the_way)
        for a in assignments:
            if a["state"] in AssignmentState.on_helper():
                self._stop_assignment(task_id, a)

    def _stop_assignment(self, task_id: str, a: dict) -> None:
        """Ask the helper to stop a run of a task that ended (cancelled or
        decided): a pulling helper hears it on its poll, a pushed one is
        asked off this thread (an unanswering helper holds up nobody)."""
        helper = self.helpers.get(a["helper_id"])
        if helper is None:
            return
        if helper.get("mode") == HelperMode.PULL.value:
            if self.mailbox is not None:
                self.mailbox.stop(helper["helper_id"])
            return
        if self.helper_client is not None:
            self.pushes.submit(self._stop_pushed, helper, task_id, a["attempt"])

    def _stop_pushed(self, helper: dict, task_id: str, attempt: int) -> None:
        try:
            self.helper_client(helper).cancel(task_id, attempt)
        except (Unreachable, ApiError) as exc:
            log.warning("could not stop task %s on %s: %s", task_id, helper["name"], exc)

    def results(self, task_id: str) -> dict:
        task = self.task(task_id)
        try:
            results = self.channel.all_results(task_id) if self.channel else []
        except Unreachable as exc:
            raise Unavailable("the channel cannot be reached", str(exc)) from None
        except ApiError as exc:  # e.g. the channel has another token
            raise Unavailable("the channel refused the query", str(exc)) from None
        canonical = task.get("result") or {}
        for r in results:
            r["canonical"] = (r["helper_id"], r["attempt"]) == (
                canonical.get("helper_id"),
                canonical.get("attempt"),
            )
        return {"task_id": task_id, "state": task["state"], "results": results, "next": None}

    def artifact(self, artifact_id: str):
        """An artifact's bytes from the channel, as a streamed response."""
        try:
            return self.channel.raw(
                "GET", f"/api/v1/artifacts/{quote(artifact_id, safe='')}", stream=True
            )
        except Unreachable as exc:
            raise Unavailable("the channel cannot be reached", str(exc)) from None
        except ApiError as exc:
            if exc.status == 404:
                raise NotFound("no such artifact", artifact_id) from None
            raise Unavailable("the channel refused the download", str(exc)) from None

    # --- what helpers report -------------------------------------------------

    def assignment_event(
        self, task_id: str, event: AssignmentEvent, caller: Principal | None = None
    ) -> dict:
        """Record what a helper reports of one assignment (its own only).
        Answers whether this event changed the assignment (a repeated or late
        one does not), not the whole task: the helper has no use for it, and
        reading it back cost two queries per event."""
        require_own(caller, event.helper_id, "report its own assignments")
        now = self.clock()
        if event.state == AssignmentState.ACCEPTED and event.boot_id and self.mailbox:
            moved = self.mailbox.acknowledge(task_id, event.helper_id, event.attempt, event.boot_id)
        elif event.state == AssignmentState.PUSH_FAILED and self.mailbox:
            reason = event.error or f"{event.helper_id} refused the assignment"
            moved = self.mailbox.refuse(task_id, event.helper_id, event.attempt, reason)
        elif event.state == AssignmentState.ACCEPTED:
            moved = self.tasks.assignment_accepted(task_id, event.helper_id, event.attempt, now)
        elif event.state in PROGRESS:
            # this moves it on from `pushing`: with what the push's answer said
            taken = self.heard(task_id, event.attempt)
            move = PROGRESS[event.state]
            moved = move(self.tasks, task_id, event.helper_id, event.attempt, now, taken)
        elif event.state == AssignmentState.FINISHED:
            moved = self._finished(task_id, event, now, self.heard(task_id, event.attempt))
        else:
            moved = False
        # the conditional update already tells a known task: only an event
        # that changed nothing is looked up, to answer 404 for an unknown one
        if not moved and self.tasks.get(task_id) is None:
            raise NotFound("no such task", task_id)
        if not moved and event.state in PROGRESS and self._withdrawn(task_id, event):
            log.info("task %s ended during the push: stopping attempt %d", task_id, event.attempt)
        self.health.contact_ok(event.helper_id)
        answer = {
            "task_id": task_id,
            "helper_id": event.helper_id,
            "attempt": event.attempt,
            "state": event.state.value,
            "recorded": moved,
        }
        if event.state == AssignmentState.ACCEPTED and event.boot_id:
            answer["run"] = moved  # to an acknowledgement (pull mode): whether it runs it
        return answer

    def _withdrawn(self, task_id: str, event: AssignmentEvent) -> bool:
        """A run reported of a replica withdrawn on its way (its task ended
        before its push was recorded as taken): stop it there."""
        if not self.tasks.stop_requested(task_id, event.attempt):
            return False
        self._stop_assignment(task_id, {"helper_id": event.helper_id, "attempt": event.attempt})
        return True

    def _finished(
        self, task_id: str, event: AssignmentEvent, now: datetime, taken: dict | None = None
    ) -> bool:
        outcome = {
            "status": event.status,
            "exit_code": event.exit_code,
            "output_digest": event.output_digest,
            "error": event.error,
        }
        self.echoes.expect("assignments", [assignment_id(task_id, event.attempt)])
        moved = self.tasks.assignment_finished(
            task_id,
            event.helper_id,
            event.attempt,
            {**outcome, **(taken or {})},
            now,
            event.started_at,
        )
        if moved and event.status == ResultStatus.SUCCEEDED:
            # a slot is free (of use only to a task that waits): the next
            # placement need not wait for this task's decision
            self.room()
            if self._succeeded(task_id, event):
                return moved
        if moved and event.started_at is not None:
            self.tasks.started(task_id, event.started_at)  # it ran (if never reported)
        # A repeated event changes no assignment; settling again is harmless,
        # and finishes the job if the first one died between the two writes.
        self.settle(task_id)
        self.kick()  # a slot is free, or the task wants another replica
        return moved

    def _succeeded(self, task_id: str, event: AssignmentEvent) -> bool:
        """The one replica of a task succeeded: decided with one write, no
        read (TaskStore.succeed_alone). False if the task is not that."""
        name = (self.helpers.summary(event.helper_id) or {}).get("name")
        result = summary({**event.model_dump(mode="json"), "task_id": task_id, "helper_name": name})
        votes = [{"output_digest": event.output_digest, "helpers": [name]}]
        now = self.clock()
        # no replica of it is left to stop: the feed's copy of its end is not news
        self.echoes.expect("tasks", [task_id])
        alone = False
        try:
            alone = self.tasks.succeed_alone(
                task_id, event.attempt, result, votes, now, event.started_at
            )
        finally:
            if not alone:  # then settle() decides and writes the end, which is news
                self.echoes.forget("tasks", [task_id])
        if not alone:
            return False
        spec = self._specs.pop(task_id, None) or (self.tasks.get(task_id) or {}).get("spec", {})
        task = {"_id": task_id, "spec": spec, "state": TaskState.SUCCEEDED.value}
        self._publish(TASK_SUCCEEDED, {**task, "result": result, "error": None})
        return True

    def settle(self, task_id: str, tries: int = 20) -> dict | None:
        """Decide what the results so far mean for the task and write it,
        deciding again if another event changed the task meanwhile."""
        for _ in range(tries):
            task = self.tasks.get(task_id)
            if task is None or task["state"] in TaskState.final():
                return task
            assignments = self.tasks.assignments_of(task_id)
            decision = decide(task["spec"], task["wanted"], assignments)
            if wants_a_new_helper(task["spec"], decision, assignments):
                ran = ran_on(assignments)
                if self.helpers.count_others(ran) == 0:
                    decision = no_helper_left(decision, len(ran))
            written = self.tasks.apply(task, decision, self.clock())
            if written is None:
                continue
            if decision.state in (TaskState.SUCCEEDED, TaskState.FAILED):
                self._publish(
                    TASK_SUCCEEDED if decision.state == TaskState.SUCCEEDED else TASK_FAILED,
                    written,
                )
                self.workflows.ended(written)  # release or cancel what runs after it
            for a in decision.cancel:
                log.info(
                    "task %s decided: stopping replica %d on %s",
                    task_id,
                    a["attempt"],
                    a["helper_name"],
                )
            self._stop_replicas(task_id, decision.cancel)
            return written
        log.error("task %s: could not settle after %d tries", task_id, tries)
        return None
