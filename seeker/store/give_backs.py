"""Replicas given back to be placed again (a failed push, a lost run, an
attempt whose assignment was never written), once per attempt, and the
reconcilers that finish a give-back a stopped seeker left half done. A
part of TaskStore (seeker/store/tasks.py), which holds both collections."""

from __future__ import annotations

from datetime import datetime

from pymongo.errors import DuplicateKeyError

from seeker.models import AssignmentState, TaskState
from seeker.store.assignments import assignment_id

# the ends of an assignment whose replica is to be placed again
GIVEN_BACK = (AssignmentState.PUSH_FAILED.value, AssignmentState.LOST.value)


class GiveBacks:
    """What TaskStore does to give replicas back (`self.tasks`,
    `self.assignments`, and its `_transition`)."""

    def void_attempt(self, task_id: str, attempt: int, reason: str, now: datetime) -> dict | None:
        """An attempt the task counts but whose assignment was never written
        (its slot was taken, or its seeker stopped between the two writes):
        record it as a failed push and give its replica back. Returns the
        task as that left it; None if the assignment exists after all (or
        the task ended)."""
        placeholder = {
            "_id": assignment_id(task_id, attempt),
            "task_id": task_id,
            "attempt": attempt,
            "helper_id": None,
            "helper_name": None,
            "state": AssignmentState.PUSH_FAILED.value,
            "assigned_at": now,
            "finished_at": now,
            "error": reason,
            "reservation": {},
            "owed": now,  # until the task counts its replica returned
        }
        try:
            self.assignments.insert_one(placeholder)
        except DuplicateKeyError:
            return None  # written after all: nothing to give back
        return self.reopen(task_id, attempt, now, reason)

    def reconcile_placements(self, before: datetime, now: datetime) -> int:
        """Give back the replicas of attempts counted by tasks left unchanged
        since `before` that have no assignment (a seeker stopped between the
        task's update and the assignment's insert). Returns how many."""
        found = self.tasks.find(stale_placements_query(before), {"attempts": 1})
        stale = {t["_id"]: t["attempts"] for t in found}
        made: dict[str, set[int]] = {t: set() for t in stale}
        found = self.assignments.find(
            {"task_id": {"$in": list(stale)}}, {"task_id": 1, "attempt": 1}
        )
        for a in found:
            made[a["task_id"]].add(a["attempt"])
        voided = 0
        for task_id, attempts in stale.items():
            for attempt in sorted(set(range(1, attempts + 1)) - made[task_id]):
                reason = "the seeker stopped while placing it"
                voided += self.void_attempt(task_id, attempt, reason, now) is not None
        return voided

    def reopen(
        self, task_id: str, attempt: int, now: datetime, reason: str | None = None
    ) -> dict | None:
        """Give back the replica of `attempt`, whose push failed or whose run
        was lost, to place again; a task with nothing live any more goes
        back to pending. Returns the task as that left it; None if it ended
        or had that replica back already.

        Once per attempt, whoever repeats it: the task lists the attempts
        it got back (`returned`), and the count and the list change in one
        write. The assignment's own move (to push_failed or lost) marked
        it `owed`; a seeker that stopped between that move and this leaves
        it to reconcile_give_backs."""
        unfinished = {"_id": task_id, "state": {"$nin": TaskState.final()}}
        return self._return(unfinished, attempt, now, reason)

    def _return(self, query: dict, attempt: int, now: datetime, reason: str | None) -> dict | None:
        """The give-back itself, on the task `query` matches: the replica
        counted open and `attempt` listed returned in one write, unless
        listed already; then back to pending if nothing of it is live."""
        sets = {"wait_reason": reason} if reason else {}
        task = self._transition(
            {**query, "returned": {"$ne": attempt}},
            sets,
            now,
            inc={"open": 1, "rev": 1},
            push={"returned": attempt},
        )
        return self._back_to_pending(task, now)

    def _back_to_pending(self, task: dict | None, now: datetime) -> dict | None:
        """A task just given a replica back goes back to pending, only as
        that change left it (pinned on the `rev` it returned) and only if
        every attempt it counts has its assignment and none is live: a
        replica placed meanwhile, by another thread or seeker, bumps `rev`
        or is an attempt whose assignment is on its way, and the task
        stays as it is."""
        if task is None or task["state"] == TaskState.PENDING.value:
            return task
        states = [a["state"] for a in self.assignments.find({"task_id": task["_id"]}, {"state": 1})]
        if len(states) < task["attempts"] or set(states) & set(AssignmentState.live()):
            return task
        return (
            self._transition(
                {"_id": task["_id"], "rev": task["rev"], "state": {"$in": TaskState.active()}},
                {},
                now,
                TaskState.PENDING.value,
            )
            or task
        )

    def reconcile_give_backs(self, before: datetime, now: datetime) -> int:
        """Give back the replicas of attempts that ended to be placed again
        (`owed`, since before `before`: a failed push, a lost run, a revival
        under way) and that their task does not count returned: the seeker
        that moved them stopped before its `reopen`. Clears `owed` where the
        replica was given back (or taken back, or the task ended). Returns
        how many it gave back.

        The tasks are read before the assignments, and each give-back is
        pinned on the task's `rev` as read: a `reopen` or a revival after
        that read changes `rev`, so this never gives a replica back twice
        nor one whose run was taken back meanwhile."""
        # a give-back is milliseconds after its move: one owed since before
        # `before` is not on its way any more
        owed = {"owed": {"$lt": before}}
        found = list(self.assignments.find(owed, {"task_id": 1}))
        if not found:
            return 0
        task_ids = sorted({a["task_id"] for a in found})
        tasks = {t["_id"]: t for t in self.tasks.find({"_id": {"$in": task_ids}})}
        given = 0
        for a in self.assignments.find({"_id": {"$in": [a["_id"] for a in found]}, **owed}):
            task = tasks.get(a["task_id"])
            if (
                task is not None
                and task["state"] not in TaskState.final()
                and a["state"] in GIVEN_BACK
                and a["attempt"] not in task.get("returned", [])
            ):
                reason = f"attempt {a['attempt']} {a['state']}: {a.get('error')}"
                if not self._give_back(task, a["attempt"], now, reason):
                    continue  # changed since read: the next pass looks again
                given += 1
            # settled (marked owed again after this read: another time)
            self.assignments.update_one(
                {"_id": a["_id"], "owed": a["owed"]}, {"$unset": {"owed": ""}}
            )
        return given

    def _give_back(self, task: dict, attempt: int, now: datetime, reason: str) -> bool:
        """reconcile_give_backs' `reopen`, pinned on the task as read."""
        as_read = {"_id": task["_id"], "rev": task["rev"], "state": task["state"]}
        return self._return(as_read, attempt, now, reason) is not None


def stale_placements_query(before: datetime) -> dict:
    """reconcile_placements' query: unfinished tasks (a decision may have
    sent one back to pending meanwhile) that count an attempt and were left
    unchanged since `before`. The states are named, first: with `$nin` of
    the final states SecantusDB walked every task ever run, every 10 s
    (160 ms of its CPU with 5,000 finished; bench/findings.md 47)."""
    return {
        "state": {"$in": TaskState.unfinished()},
        "attempts": {"$gte": 1},
        "updated_at": {"$lt": before},
    }
