"""The assignments of tasks to helpers (one document per `task_id.attempt`):
their state changes, each one conditional update on the expected current
state (the queries over them: seeker/store/assignment_reads.py). A half of
TaskStore (seeker/store/tasks.py), which holds both collections."""

from __future__ import annotations

from datetime import datetime

from pymongo.errors import DuplicateKeyError

from seeker.models import AssignmentState, TaskState
from seeker.store.assignment_reads import AssignmentReads
from seeker.store.leases import fenced


def assignment_id(task_id: str, attempt: int) -> str:
    """An assignment document's `_id`: its task's id and its attempt."""
    return f"{task_id}.{attempt}"


def slot_key(helper_id: str, slot: int) -> str:
    return f"{helper_id}/{slot}"


def slot_number(assignment: dict) -> int | None:
    """Which of its helper's slots a live assignment holds (None: none recorded)."""
    key = assignment.get("slot")
    return int(key.rsplit("/", 1)[1]) if key else None


class AssignmentStates(AssignmentReads):
    """What TaskStore does with assignments (`self.assignments`); it uses
    TaskStore's task changes (`_update`, `reopen`)."""

    def acknowledge(
        self, task_id: str, helper_id: str, attempt: int, boot_id: str, now: datetime
    ) -> bool:
        """A pulling helper takes an offer: whether that process is to run it
        (True again when the same process acknowledges it twice; False when
        the offer was withdrawn, expired or taken by another process)."""
        if self.assignment_accepted(task_id, helper_id, attempt, now, boot_id):
            return True
        again = self.assignments.find_one(
            {
                "_id": assignment_id(task_id, attempt),
                "helper_id": helper_id,
                "boot_id": boot_id,
                "state": {"$in": AssignmentState.on_helper()},
            },
            {"_id": 1},
        )
        return again is not None

    def revive(self, task_id: str, attempt: int, helper_id: str, now: datetime) -> bool:
        """A run marked lost is alive after all (its helper came back): keep
        it, if its replica has not been placed again meanwhile (the replica
        given back when it was lost is still open). Returns whether kept.

        The replica is taken back from the task's `returned` list (see
        reopen), so the attempt can be given back again if it is lost
        again; one whose give-back a stopped seeker left owed is not kept
        (reconcile_give_backs gives it back).

        Three writes: the assignment is marked `owed` again first, so a
        seeker that stops after taking the replica and before taking the
        run back leaves it to reconcile_give_backs."""
        owe = {"_id": assignment_id(task_id, attempt), "state": AssignmentState.LOST.value}
        if not self.assignments.update_one(owe, {"$set": {"owed": now}}).matched_count:
            return False
        given_back = {"returned": attempt, "open": {"$gte": 1}}
        taken = self._update(
            {"_id": task_id, "state": TaskState.PENDING.value, **given_back},
            {"wait_reason": None},
            now,
            TaskState.RUNNING.value,
            inc={"open": -1, "rev": 1},
            pull={"returned": attempt},
        ) or self._update(
            {"_id": task_id, "state": {"$in": TaskState.active()}, **given_back},
            {"wait_reason": None},
            now,
            inc={"open": -1, "rev": 1},
            pull={"returned": attempt},
        )
        if not taken:
            return False
        if not self._take_back(task_id, attempt, helper_id, now):
            self.reopen(task_id, attempt, now)  # revived by another request meanwhile: give it back
            return False
        return True

    def _take_back(self, task_id: str, attempt: int, helper_id: str, now: datetime) -> bool:
        """lost -> running, in a slot of its helper (it runs there anyway)."""
        for _ in range(3):
            used = {slot_number(a) for a in self.live_assignment_docs(helper_id)}
            free = next(n for n in range(len(used) + 1) if n not in used)
            sets = {"error": None, "finished_at": None, "revived_at": now, "changed_at": now}
            try:
                return self._move(
                    task_id,
                    attempt,
                    helper_id,
                    [AssignmentState.LOST.value],
                    AssignmentState.RUNNING.value,
                    {**sets, "slot": slot_key(helper_id, free)},
                )
            except DuplicateKeyError:
                continue  # that slot was just taken: the next
        return False

    def _move(
        self,
        task_id: str,
        attempt: int,
        helper_id: str | None,
        from_states: list[str],
        to_state: str,
        sets: dict,
        epoch: int | None = None,
        started: bool = False,
    ) -> bool:
        """Move one assignment on, if it is in one of `from_states` (and is
        `helper_id`'s); returns whether this call moved it. An update_one,
        not a findAndModify: no caller needs the document back. `epoch`: a
        move made under the lease of that epoch, refused for an assignment
        placed in a newer one (seeker/store/leases.py). `started`: a run
        reported, refused for a replica withdrawn on its way (see withdraw)."""
        query: dict = {
            "_id": assignment_id(task_id, attempt),
            "state": {"$in": from_states},
            **fenced(epoch),
        }
        if started:
            query["stop_requested"] = {"$ne": True}
        if helper_id is not None:
            query["helper_id"] = helper_id
        update: dict = {"$set": {**sets, "state": to_state}}
        if to_state not in AssignmentState.live():
            update["$unset"] = {"slot": ""}  # the slot is free again
        else:
            update["$unset"] = {"owed": ""}  # a lost run taken back (see revive)
        return self.assignments.update_one(query, update).matched_count == 1

    def push_failed(
        self,
        task_id: str,
        attempt: int,
        reason: str,
        now: datetime,
        helper_id: str | None = None,
        epoch: int | None = None,
    ) -> dict | None:
        """A push that did not reach the helper (or an offer it refused or
        never took): its replica is to place again."""
        moved = self._move(
            task_id,
            attempt,
            helper_id,
            [AssignmentState.PUSHING.value],
            AssignmentState.PUSH_FAILED.value,
            {"error": reason, "finished_at": now, "owed": now, "changed_at": now},  # see reopen
            epoch,
        )
        if not moved:
            return None
        return self.reopen(task_id, attempt, now)

    def assignment_accepted(
        self, task_id: str, helper_id: str, attempt: int, now: datetime, boot_id: str | None = None
    ) -> bool:
        """pushing -> accepted, unless its task ended while it was on its way
        (`stop_requested`: see withdraw)."""
        sets = {"accepted_at": now, **({"boot_id": boot_id} if boot_id else {})}
        query = {
            "_id": assignment_id(task_id, attempt),
            "helper_id": helper_id,
            "state": AssignmentState.PUSHING.value,
            "stop_requested": {"$ne": True},
        }
        update = {"$set": {**sets, "state": AssignmentState.ACCEPTED.value}}
        return self.assignments.update_one(query, update).matched_count == 1

    def withdraw(self, keys: list[str]) -> int:
        """Assignments still on their way to their helper whose task ended
        (cancelled, decided): the helper is not to run them. A push that
        reaches the helper anyway is stopped there when its answer or the
        helper's report of the run is recorded (seeker/control/acceptances.py,
        Seeker.assignment_event), an offer is never acknowledged."""
        if not keys:
            return 0
        found = self.assignments.update_many(
            {"_id": {"$in": keys}, "state": AssignmentState.PUSHING.value},
            {"$set": {"stop_requested": True}},
        )
        return found.matched_count

    def stop_requested(self, task_id: str, attempt: int) -> bool:
        doc = self.assignments.find_one(
            {"_id": assignment_id(task_id, attempt)}, {"stop_requested": 1}
        )
        return bool((doc or {}).get("stop_requested"))

    def assignment_lost(
        self, task_id: str, attempt: int, reason: str, now: datetime, epoch: int | None = None
    ) -> bool:
        return self._move(
            task_id,
            attempt,
            None,
            AssignmentState.live(),
            AssignmentState.LOST.value,
            {"error": reason, "finished_at": now, "owed": now, "changed_at": now},  # see reopen
            epoch,
        )

    def assignment_fetching(
        self, task_id: str, helper_id: str, attempt: int, now: datetime, taken: dict | None = None
    ) -> bool:
        return self._move(
            task_id,
            attempt,
            helper_id,
            [AssignmentState.PUSHING.value, AssignmentState.ACCEPTED.value],
            AssignmentState.FETCHING.value,
            {"fetching_at": now, **(taken or {})},
            started=True,
        )

    def assignment_pulling(
        self, task_id: str, helper_id: str, attempt: int, now: datetime, taken: dict | None = None
    ) -> bool:
        return self._move(
            task_id,
            attempt,
            helper_id,
            [
                AssignmentState.PUSHING.value,
                AssignmentState.ACCEPTED.value,
                AssignmentState.FETCHING.value,
            ],
            AssignmentState.PULLING.value,
            {"pulling_at": now, **(taken or {})},
            started=True,
        )

    def assignment_running(
        self, task_id: str, helper_id: str, attempt: int, now: datetime, taken: dict | None = None
    ) -> bool:
        moved = self._move(
            task_id,
            attempt,
            helper_id,
            [
                AssignmentState.PUSHING.value,
                AssignmentState.ACCEPTED.value,
                AssignmentState.FETCHING.value,
                AssignmentState.PULLING.value,
            ],
            AssignmentState.RUNNING.value,
            {"started_at": now, **(taken or {})},
            started=True,
        )
        if moved:
            self.started(task_id, now)
        return moved

    def assignment_finished(
        self,
        task_id: str,
        helper_id: str,
        attempt: int,
        outcome: dict,
        now: datetime,
        started_at: datetime | None = None,
    ) -> bool:
        """Record an assignment's end (and, when it was never reported
        running, when its container started); returns whether this call
        ended it (False when it had already ended: a repeated event changes
        nothing)."""
        query = {"_id": assignment_id(task_id, attempt), "helper_id": helper_id}
        query["state"] = {"$in": AssignmentState.live()}
        update: dict = {
            "$set": {
                **outcome,
                "finished_at": now,
                "changed_at": now,  # see live_for_placement
                "state": AssignmentState.FINISHED.value,
            },
            "$unset": {"slot": ""},
        }
        if started_at is not None:
            update["$min"] = {"started_at": started_at}
        return self.assignments.update_one(query, update).matched_count == 1
