"""The seeker's tasks and their assignments in its database (the helpers
are in seeker/store/helpers.py). Every state change is one conditional
update on the expected current state (never read-modify-write)."""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from seeker.helper_models import HelperMode
from seeker.models import AssignmentState, TaskState
from seeker.store.assignments import AssignmentStates, slot_key
from seeker.store.task_document import new_task

# the ends of an assignment whose replica is to be placed again
GIVEN_BACK = (AssignmentState.PUSH_FAILED.value, AssignmentState.LOST.value)


class SlotTaken(Exception):
    """The helper slot a placement chose was taken by another placement
    meanwhile (another seeker's); `task` is the task as it is now."""

    def __init__(self, task: dict | None):
        super().__init__("slot taken")
        self.task = task


class TaskStore(AssignmentStates):
    """Tasks, and their assignments in a collection of their own (one document
    per `task_id.attempt`), so each state change is a single-document update."""

    def __init__(self, db: Database):
        self.tasks = db["tasks"]
        self.assignments = db["assignments"]

    def ensure_indexes(self) -> None:
        self.tasks.create_index([("state", ASCENDING), ("created_at", ASCENDING)], name="by_state")
        self.tasks.create_index([("open", ASCENDING), ("created_at", ASCENDING)], name="to_place")
        self.tasks.create_index([("created_at", DESCENDING)], name="newest")
        self.assignments.create_index(
            [("task_id", ASCENDING), ("attempt", ASCENDING)], name="by_task"
        )
        self.assignments.create_index(
            [("state", ASCENDING), ("helper_id", ASCENDING)], name="by_state_helper"
        )
        # a live assignment holds `slot` (helper id/number); it is unset when
        # the assignment ends, so the index holds live assignments only
        self.assignments.create_index("slot", unique=True, sparse=True, name="one_per_slot")
        # the few ended assignments whose replica may not have been given back
        self.assignments.create_index("owed", sparse=True, name="owed")

    def create(self, task_id: str, spec: dict, now: datetime) -> dict:
        doc = new_task(task_id, spec, now)
        self.tasks.insert_one(doc)
        return doc

    def get(self, task_id: str) -> dict | None:
        return self.tasks.find_one({"_id": task_id})

    def list(
        self,
        state: str | None = None,
        limit: int = 50,
        after: tuple[datetime, str] | None = None,
        array_id: str | None = None,
    ) -> list[dict]:
        """Newest first (ties by id); `after`: the (created_at, id) of the last
        task of the page before, for the next page; `array_id`: one array's."""
        query: dict = {"state": state} if state else {}
        if array_id:
            query["array_id"] = array_id
        if after is not None:
            created, task_id = after
            query["$or"] = [
                {"created_at": {"$lt": created}},
                {"created_at": created, "_id": {"$lt": task_id}},
            ]
        found = self.tasks.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        return list(found.limit(limit))

    def pending(self, limit: int = 200) -> list[dict]:
        """Unfinished tasks with replicas still to place, oldest first."""
        # `open` is a count: ">= 1" is "> 0", and SecantusDB routes a $gte
        # range through the to_place index where it scans the whole
        # collection for $gt (12 ms against 0.8 ms with 2,000 tasks)
        return list(
            self.tasks.find({"open": {"$gte": 1}, "state": {"$nin": TaskState.final()}})
            .sort("created_at", ASCENDING)
            .limit(limit)
        )

    def states_of(self, task_ids: set[str]) -> dict[str, str]:
        """Task id -> state, for the tasks that exist."""
        found = self.tasks.find({"_id": {"$in": sorted(task_ids)}}, {"state": 1})
        return {t["_id"]: t["state"] for t in found}

    # --- task state changes, each one conditional update ---------------------

    def _transition(
        self,
        query: dict,
        sets: dict,
        now: datetime,
        new_state: str | None = None,
        inc: dict | None = None,
        push: dict | None = None,
    ) -> dict | None:
        """The change, returning the task as it is after it (None if the
        query matched nothing)."""
        update = _task_update(sets, now, new_state, inc, push)
        return self.tasks.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)

    def _update(
        self,
        query: dict,
        sets: dict,
        now: datetime,
        new_state: str | None = None,
        inc: dict | None = None,
        pull: dict | None = None,
    ) -> bool:
        """The same conditional change as `_transition`, just as atomic, for
        callers that need no document back: an `update_one` is much cheaper
        than a findAndModify (on SecantusDB the latter scans the whole
        collection: bench/findings.md)."""
        update = _task_update(sets, now, new_state, inc, pull=pull)
        return self.tasks.update_one(query, update).matched_count == 1

    def assign(
        self,
        task: dict,
        helper: dict,
        now: datetime,
        reservation: dict | None = None,
        via: str = HelperMode.PUSH.value,
        slot: int | None = None,
        epoch: int = 0,
    ) -> dict | None:
        """Place one replica of `task` on `helper`, if nobody changed the task
        since it was read (its `rev`); a pending task becomes dispatched.
        Returns the new assignment.

        `reservation` (cpus, memory, gpus, gpu_indices) is what the assignment
        holds on the helper while it is live; `via` how it reaches the helper
        (pushed, or offered until the pulling helper acknowledges it); `slot`
        which of the helper's slots it takes: a unique index keeps two live
        assignments out of one slot, whichever seekers placed them. A slot
        taken meanwhile raises SlotTaken (the attempt is given back); `epoch`
        the lease epoch the placing seeker knows (the fence of store/leases.py)."""
        state = task["state"]
        if state in TaskState.final():
            return None  # a task that has ended gets no more replicas
        moved = self._update(
            {"_id": task["_id"], "rev": task["rev"], "state": state, "open": {"$gt": 0}},
            {"wait_reason": None},
            now,
            TaskState.DISPATCHED.value if state == TaskState.PENDING.value else None,
            inc={"attempts": 1, "open": -1, "rev": 1},
        )
        if not moved:
            return None
        # the pinned rev means the task was as read: every change of
        # `attempts` also bumps `rev`, so this is the attempt just counted
        attempt = task["attempts"] + 1
        assignment = {
            "_id": f"{task['_id']}.{attempt}",
            "task_id": task["_id"],
            "attempt": attempt,
            "helper_id": helper["helper_id"],
            "helper_name": helper["name"],
            "state": AssignmentState.PUSHING.value,
            "via": via,
            "assigned_at": now,
            "reservation": reservation or {},
            "epoch": epoch,
        }
        if slot is not None:
            assignment["slot"] = slot_key(helper["helper_id"], slot)
        try:
            self.assignments.insert_one(assignment)
        except DuplicateKeyError:
            reason = f"slot {slot} of {helper['name']} was taken by another placement"
            raise SlotTaken(self.void_attempt(task["_id"], attempt, reason, now)) from None
        return assignment

    def void_attempt(self, task_id: str, attempt: int, reason: str, now: datetime) -> dict | None:
        """An attempt the task counts but whose assignment was never written
        (its slot was taken, or its seeker stopped between the two writes):
        record it as a failed push and give its replica back. Returns the
        task as that left it; None if the assignment exists after all (or
        the task ended)."""
        placeholder = {
            "_id": f"{task_id}.{attempt}",
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
        stale = {
            t["_id"]: t["attempts"]
            for t in self.tasks.find(
                {
                    # a decision may have sent it back to pending meanwhile
                    "state": {"$nin": TaskState.final()},
                    "attempts": {"$gte": 1},
                    "updated_at": {"$lt": before},
                },
                {"attempts": 1},
            )
        }
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

    def set_wait_reason(self, task_id: str, reason: str, now: datetime) -> None:
        """Why an unfinished task still has replicas to place."""
        self.tasks.update_one(
            {"_id": task_id, "state": {"$nin": TaskState.final()}, "open": {"$gt": 0}},
            {"$set": {"wait_reason": reason, "updated_at": now}},
        )

    def apply(self, task: dict, decision, now: datetime) -> dict | None:
        """Write a decision made from `task` as read (its `rev`): None when
        the task changed meanwhile (decide again) or already ended."""
        votes = [{"output_digest": d, "helpers": h} for d, h in decision.votes.items()]
        sets: dict = {"votes": votes, "wanted": decision.wanted}
        if decision.result is not None:
            sets["result"] = decision.result
        if decision.error is not None or decision.state is not None:
            sets["error"] = decision.error
        state = decision.state.value if decision.state is not None else None
        if state == task["state"]:
            state = None
        if task["state"] in TaskState.final():
            return None
        inc = {"rev": 1, "open": decision.wanted - task["wanted"]}
        # pinned on rev and state, so the task is exactly as read (only the
        # wait reason, which no decision reads, can change without either):
        # the document after the write is computed here, not read back
        written = self._update(
            {"_id": task["_id"], "rev": task["rev"], "state": task["state"]},
            sets,
            now,
            state,
            inc=inc,
        )
        if not written:
            return None
        after = {**task, **sets, "updated_at": now}
        after["rev"] = task["rev"] + inc["rev"]
        after["open"] = task["open"] + inc["open"]
        if state:
            after["state"] = state
            after["history"] = [*task.get("history", []), {"state": state, "at": now}]
        return after

    def succeed_alone(
        self,
        task_id: str,
        attempt: int,
        result: dict,
        votes: list[dict],
        now: datetime,
        started_at: datetime | None = None,
    ) -> bool:
        """The decision that needs nothing read first: a task of one replica
        whose latest attempt (`attempt`, with nothing left to place)
        succeeded has succeeded, whatever its policy. False when the task
        is not that, or tasks run after it (settle() then decides from its
        assignments and releases them). A task still `dispatched` (its run
        ended before it was reported running) is recorded as having run
        from `started_at`."""
        alone = {
            "_id": task_id,
            "spec.replicas": 1,
            "open": 0,
            "attempts": attempt,
            "has_dependents": {"$ne": True},
        }
        sets = {"result": result, "votes": votes, "error": None}
        ran = [{"state": TaskState.RUNNING.value, "at": started_at or now}]
        update = _task_update(sets, now, TaskState.SUCCEEDED.value, {"rev": 1})
        update["$push"] = {"history": {"$each": [*ran, update["$push"]["history"]]}}
        dispatched = {**alone, "state": TaskState.DISPATCHED.value}
        if self.tasks.update_one(dispatched, update).matched_count:
            return True
        running = {**alone, "state": TaskState.RUNNING.value}
        return self._update(running, sets, now, TaskState.SUCCEEDED.value, inc={"rev": 1})

    def started(self, task_id: str, now: datetime) -> bool:
        """A dispatched task's first replica runs: the task is running."""
        return self._update(
            {"_id": task_id, "state": TaskState.DISPATCHED.value}, {}, now, TaskState.RUNNING.value
        )

    def cancel(self, task_id: str, now: datetime) -> dict | None:
        """Cancel an unfinished task; its replicas still on their way to
        their helpers are withdrawn (see AssignmentStates.withdraw)."""
        task = self._transition(
            {"_id": task_id, "state": {"$nin": TaskState.final()}},
            {"error": "cancelled by user"},
            now,
            TaskState.CANCELLED.value,
        )
        if task is not None:
            self.assignments.update_many(
                {"task_id": task_id, "state": AssignmentState.PUSHING.value},
                {"$set": {"stop_requested": True}},
            )
        return task

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
        sets = {"wait_reason": reason} if reason else {}
        task = self._transition(
            {"_id": task_id, "state": {"$nin": TaskState.final()}, "returned": {"$ne": attempt}},
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
        query = {
            "_id": task["_id"],
            "rev": task["rev"],
            "state": task["state"],
            "returned": {"$ne": attempt},
        }
        after = self._transition(
            query,
            {"wait_reason": reason},
            now,
            inc={"open": 1, "rev": 1},
            push={"returned": attempt},
        )
        if after is None:
            return False
        self._back_to_pending(after, now)
        return True


def _task_update(
    sets: dict,
    now: datetime,
    new_state: str | None,
    inc: dict | None,
    push: dict | None = None,
    pull: dict | None = None,
) -> dict:
    update: dict = {"$set": {**sets, "updated_at": now}}
    if push:
        update["$push"] = dict(push)
    if pull:
        update["$pull"] = pull
    if new_state:
        update["$set"]["state"] = new_state
        update.setdefault("$push", {})["history"] = {"state": new_state, "at": now}
    if inc:
        update["$inc"] = inc
    return update
