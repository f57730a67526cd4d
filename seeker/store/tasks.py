"""The seeker's tasks and their assignments in its database (the helpers
are in seeker/store/helpers.py). Every state change is one conditional
update on the expected current state (never read-modify-write)."""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database

from seeker.models import FINAL_TASK_STATES, LIVE_ASSIGNMENT_STATES, AssignmentState, TaskState

LIVE = [s.value for s in LIVE_ASSIGNMENT_STATES]
ACTIVE_TASK = [TaskState.DISPATCHED.value, TaskState.RUNNING.value]
FINAL = [s.value for s in FINAL_TASK_STATES]


class TaskStore:
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
            self.tasks.find({"open": {"$gte": 1}, "state": {"$nin": FINAL}})
            .sort("created_at", ASCENDING)
            .limit(limit)
        )

    def assignments_of(self, task_id: str) -> list[dict]:
        return list(self.assignments.find({"task_id": task_id}).sort("attempt", ASCENDING))

    def live_assignments(self) -> dict[str, int]:
        """Number of live assignments per helper id."""
        counts: dict[str, int] = {}
        for a in self.assignments.find({"state": {"$in": LIVE}}, {"helper_id": 1}):
            counts[a["helper_id"]] = counts.get(a["helper_id"], 0) + 1
        return counts

    def stale_pushes(self, before: datetime) -> list[dict]:
        """Assignments recorded for a push that never got an answer (the
        seeker died during it), assigned before `before`."""
        return list(
            self.assignments.find(
                {"state": AssignmentState.PUSHING.value, "assigned_at": {"$lt": before}}
            )
        )

    def live_assignment_docs(self, helper_id: str | None = None) -> list[dict]:
        query: dict = {"state": {"$in": LIVE}}
        if helper_id is not None:
            query["helper_id"] = helper_id
        return list(self.assignments.find(query))

    # --- task state changes, each one conditional update ---------------------

    def _transition(
        self,
        query: dict,
        sets: dict,
        now: datetime,
        new_state: str | None = None,
        inc: dict | None = None,
    ) -> dict | None:
        """The change, returning the task as it is after it (None if the
        query matched nothing)."""
        update = _task_update(sets, now, new_state, inc)
        return self.tasks.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)

    def _update(
        self,
        query: dict,
        sets: dict,
        now: datetime,
        new_state: str | None = None,
        inc: dict | None = None,
    ) -> bool:
        """The same conditional change as `_transition`, just as atomic, for
        callers that need no document back: an `update_one` is much cheaper
        than a findAndModify (on SecantusDB the latter scans the whole
        collection: bench/findings.md)."""
        update = _task_update(sets, now, new_state, inc)
        return self.tasks.update_one(query, update).matched_count == 1

    def assign(
        self, task: dict, helper: dict, now: datetime, reservation: dict | None = None
    ) -> dict | None:
        """Place one replica of `task` on `helper`, if nobody changed the task
        since it was read (its `rev`); a pending task becomes dispatched.
        Returns the new assignment.

        `reservation` (cpus, memory, gpus, gpu_indices) is what the assignment
        holds on the helper while it is live."""
        state = task["state"]
        if state in FINAL:
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
            "assigned_at": now,
            "reservation": reservation or {},
        }
        self.assignments.insert_one(assignment)
        return assignment

    def set_wait_reason(self, task_id: str, reason: str, now: datetime) -> None:
        """Why an unfinished task still has replicas to place."""
        self.tasks.update_one(
            {"_id": task_id, "state": {"$nin": FINAL}, "open": {"$gt": 0}},
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
        if task["state"] in FINAL:
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

    def started(self, task_id: str, now: datetime) -> bool:
        """A dispatched task's first replica runs: the task is running."""
        return self._update(
            {"_id": task_id, "state": TaskState.DISPATCHED.value}, {}, now, TaskState.RUNNING.value
        )

    def cancel(self, task_id: str, now: datetime) -> dict | None:
        return self._transition(
            {"_id": task_id, "state": {"$nin": FINAL}},
            {"error": "cancelled by user"},
            now,
            TaskState.CANCELLED.value,
        )

    # --- assignment state changes --------------------------------------------

    def _move(
        self,
        task_id: str,
        attempt: int,
        helper_id: str | None,
        from_states: list[str],
        to_state: str,
        sets: dict,
    ) -> bool:
        """Move one assignment on, if it is in one of `from_states` (and is
        `helper_id`'s); returns whether this call moved it. An update_one,
        not a findAndModify: no caller needs the document back."""
        query: dict = {"_id": f"{task_id}.{attempt}", "state": {"$in": from_states}}
        if helper_id is not None:
            query["helper_id"] = helper_id
        update = {"$set": {**sets, "state": to_state}}
        return self.assignments.update_one(query, update).matched_count == 1

    def push_failed(self, task_id: str, attempt: int, reason: str, now: datetime) -> dict | None:
        """A push that did not reach the helper: its replica is to place again."""
        moved = self._move(
            task_id,
            attempt,
            None,
            [AssignmentState.PUSHING.value],
            AssignmentState.PUSH_FAILED.value,
            {"error": reason, "finished_at": now},
        )
        if not moved:
            return None
        return self.reopen(task_id, now)

    def reopen(self, task_id: str, now: datetime, reason: str | None = None) -> dict | None:
        """One replica to place again (its push failed or its run was lost);
        a task with nothing live any more goes back to pending."""
        sets = {"wait_reason": reason} if reason else {}
        task = self._transition(
            {"_id": task_id, "state": {"$nin": FINAL}}, sets, now, inc={"open": 1, "rev": 1}
        )
        if task is None or task["state"] == TaskState.PENDING.value:
            return task
        if self.assignments.count_documents({"task_id": task_id, "state": {"$in": LIVE}}):
            return task
        return (
            self._transition(
                {"_id": task_id, "state": {"$in": ACTIVE_TASK}}, {}, now, TaskState.PENDING.value
            )
            or task
        )

    def assignment_accepted(
        self, task_id: str, helper_id: str, attempt: int, now: datetime, boot_id: str | None = None
    ) -> bool:
        sets = {"accepted_at": now, **({"boot_id": boot_id} if boot_id else {})}
        return self._move(
            task_id,
            attempt,
            helper_id,
            [AssignmentState.PUSHING.value],
            AssignmentState.ACCEPTED.value,
            sets,
        )

    def assignment_lost(self, task_id: str, attempt: int, reason: str, now: datetime) -> bool:
        return self._move(
            task_id,
            attempt,
            None,
            LIVE,
            AssignmentState.LOST.value,
            {"error": reason, "finished_at": now},
        )

    def assignment_fetching(
        self, task_id: str, helper_id: str, attempt: int, now: datetime
    ) -> bool:
        return self._move(
            task_id,
            attempt,
            helper_id,
            [AssignmentState.PUSHING.value, AssignmentState.ACCEPTED.value],
            AssignmentState.FETCHING.value,
            {"fetching_at": now},
        )

    def assignment_pulling(self, task_id: str, helper_id: str, attempt: int, now: datetime) -> bool:
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
            {"pulling_at": now},
        )

    def assignment_running(self, task_id: str, helper_id: str, attempt: int, now: datetime) -> bool:
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
            {"started_at": now},
        )
        if moved:
            self.started(task_id, now)
        return moved

    def assignment_finished(
        self, task_id: str, helper_id: str, attempt: int, outcome: dict, now: datetime
    ) -> bool:
        """Record an assignment's end; returns whether this call ended it
        (False when it had already ended: a repeated event changes nothing)."""
        return self._move(
            task_id,
            attempt,
            helper_id,
            LIVE,
            AssignmentState.FINISHED.value,
            {**outcome, "finished_at": now},
        )


def new_task(task_id: str, spec: dict, now: datetime) -> dict:
    replicas = spec.get("replicas", 1)
    return {
        "_id": task_id,
        "spec": spec,
        "state": TaskState.PENDING.value,
        "created_at": now,
        "updated_at": now,
        "attempts": 0,  # assignments made, pushed or not
        "wanted": replicas,  # replicas the task should have had in all
        "open": replicas,  # of those, still to place
        "rev": 0,  # bumped by every change that decisions depend on
        "result": None,
        "error": None,
        "votes": [],  # successful replicas grouped by output digest
        "wait_reason": None,
        "history": [{"state": TaskState.PENDING.value, "at": now}],
    }


def _task_update(sets: dict, now: datetime, new_state: str | None, inc: dict | None) -> dict:
    update: dict = {"$set": {**sets, "updated_at": now}}
    if new_state:
        update["$set"]["state"] = new_state
        update["$push"] = {"history": {"state": new_state, "at": now}}
    if inc:
        update["$inc"] = inc
    return update


def task_json(doc: dict, assignments: list[dict] | None = None) -> dict:
    out = {"task_id": doc["_id"]}
    out.update(doc["spec"])
    for key in (
        "state",
        "created_at",
        "updated_at",
        "attempts",
        "result",
        "error",
        "wait_reason",
        "wanted",
        "votes",
        "history",
    ):
        out[key] = doc.get(key)
    for key in ("array_id", "array_index", "waiting_for"):
        if key in doc:
            out[key] = doc[key]
    out["wait_reason"] = held_reason(doc) or out["wait_reason"]
    if assignments is not None:
        out["assignments"] = [{k: v for k, v in a.items() if k != "_id"} for a in assignments]
    return out


def held_reason(doc: dict) -> str | None:
    """Why a task held for its dependencies waits (seeker/store/workflows.py)."""
    waiting = doc.get("waiting_for")
    if "open_on_release" not in doc or not waiting or doc["state"] != TaskState.PENDING.value:
        return None
    more = f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
    return f"waiting for {len(waiting)} task(s) to succeed: {', '.join(waiting[:5])}{more}"
