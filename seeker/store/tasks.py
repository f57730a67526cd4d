"""The seeker's tasks and their assignments in its database (the helpers
are in seeker/store/helpers.py). Every state change is one conditional
update on the expected current state (never read-modify-write)."""

from __future__ import annotations

import threading
from datetime import datetime

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.cursor import Cursor
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from seeker.helper_models import HelperMode
from seeker.models import AssignmentState, TaskState
from seeker.placement.live import LiveSet
from seeker.store.assignments import AssignmentStates, assignment_id, slot_key
from seeker.store.give_backs import GiveBacks
from seeker.store.newest import newest_page
from seeker.store.queue import Queue
from seeker.store.task_document import new_task

QUEUE_LIMIT = 200  # the pending tasks a placement pass looks at, oldest first
QUEUE_FIRST = 16  # read in a placement pass's first query
# pending: replicas to place, not ended. `open` is a count: ">= 1" is "> 0",
# and SecantusDB routes a $gte range through the to_place index where it
# scans the whole collection for $gt (12 ms against 0.8 ms with 2,000 tasks)
TO_PLACE = {"open": {"$gte": 1}, "state": {"$nin": TaskState.final()}}


class SlotTaken(Exception):
    """The helper slot a placement chose was taken by another placement
    meanwhile (another seeker's); `task` is the task as it is now."""

    def __init__(self, task: dict | None):
        super().__init__("slot taken")
        self.task = task


class TaskStore(AssignmentStates, GiveBacks):
    """Tasks, and their assignments in a collection of their own (one document
    per `task_id.attempt`), so each state change is a single-document update."""

    def __init__(self, db: Database):
        self.tasks = db["tasks"]
        self.assignments = db["assignments"]
        # state (None: any) -> the newest task's created_at at the last list
        self._newest: dict[str | None, datetime] = {}
        # the live assignments kept between placement passes (follow_live):
        # by id; when last read, and last read whole
        self._following_live = False
        self._live: LiveSet | None = None
        self._live_read: tuple[datetime, datetime] | None = None
        self._live_lock = threading.Lock()

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
        # what a placement pass reads of a busy fleet (live_for_placement)
        self.assignments.create_index("changed_at", name="by_change")

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
        now: datetime | None = None,
    ) -> list[dict]:
        """Newest first (ties by id); `after`: the (created_at, id) of the last
        task of the page before, for the next page; `array_id`: one array's.
        `now`: look for the page in windows of time back from now or from
        `after` (seeker/store/newest.py), not in every task at once."""
        query: dict = {"state": state} if state else {}
        if array_id:
            query["array_id"] = array_id

        def find(q: dict) -> list[dict]:
            found = self.tasks.find(q).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            return list(found.limit(limit))

        if now is None or array_id:  # an array's tasks: its own index bounds them
            if after is not None:
                created, task_id = after
                ties = {"created_at": created, "_id": {"$lt": task_id}}
                query["$or"] = [{"created_at": {"$lt": created}}, ties]
            return find(query)
        if after is None:
            hint = self._newest.get(state)
            page = newest_page(find, query, limit, now, "created_at", newest=hint)
            if page:  # a hint for the next list (no decision rests on it)
                self._newest[state] = page[0]["created_at"]
            return page
        created, task_id = after
        ties = {**query, "created_at": created, "_id": {"$lt": task_id}}
        # one `$or` had SecantusDB read every task, window or not: the ties
        # (created in the same millisecond) and the older ones apart
        page = find(ties)
        if len(page) < limit:
            page += newest_page(find, query, limit - len(page), created, "created_at", True)
        return page[:limit]

    def queue(
        self,
        limit: int = QUEUE_LIMIT,
        first: int = QUEUE_FIRST,
        kept: tuple[list[dict], bool] | None = None,
    ) -> Queue:
        """The pending tasks, oldest first, at most `limit`, read as the
        caller goes: the `first` oldest in one query, which leaves no cursor
        open at the server; only a caller that takes them all (a placement
        pass with room left) has the rest read, in a second query. A pass
        that runs out of room before stops reading (close it) instead of
        decoding the whole queue. `kept`: the tasks a pass before did not
        get to (Queue.unread), taken first, with no query; then, unless they
        were the whole queue, the queue read again past them."""
        if kept is not None:
            tasks, whole = kept
            return Queue(tasks, whole, lambda: self.queue(limit, first))
        first = min(first, limit)
        head = list(self._oldest(TO_PLACE).limit(first))
        # the whole queue, or all a pass looks at
        whole = len(head) < first or first == limit
        return Queue(head, whole, lambda: self._oldest(TO_PLACE).limit(limit))

    def unexplained(
        self, since: datetime, limit: int = QUEUE_LIMIT, among: list[str] | None = None
    ) -> list[dict]:
        """The pending tasks created at or after `since`, oldest first, that
        do not say yet why they wait (`wait_reason`); `among`: of these ids
        only (SecantusDB filters every pending task for the query without:
        12-17 ms of its CPU with 300 pending, 1 ms with two ids)."""
        return list(self._oldest(unexplained_query(since, among)).limit(limit))

    def _oldest(self, query: dict) -> Cursor:
        """The tasks `query` matches, oldest first."""
        return self.tasks.find(query).sort("created_at", ASCENDING)

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
            "_id": assignment_id(task["_id"], attempt),
            "task_id": task["_id"],
            "attempt": attempt,
            "helper_id": helper["helper_id"],
            "helper_name": helper["name"],
            "state": AssignmentState.PUSHING.value,
            "via": via,
            "assigned_at": now,
            "changed_at": now,  # live from now (see live_for_placement)
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

    def set_wait_reason(self, task_ids: list[str], reason: str, now: datetime) -> None:
        """Why unfinished tasks still have replicas to place: the same reason
        for each, in one write."""
        query = {"state": {"$nin": TaskState.final()}, "open": {"$gt": 0}}
        update = {"$set": {"wait_reason": reason, "updated_at": now}}
        if len(task_ids) == 1:
            self.tasks.update_one({"_id": task_ids[0], **query}, update)
        elif task_ids:
            self.tasks.update_many({"_id": {"$in": task_ids}, **query}, update)

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


def unexplained_query(since: datetime, among: list[str] | None = None) -> dict:
    """TaskStore.unexplained's query. The ids (`among`) come first, then
    `created_at`: SecantusDB plans a query by its first field, and the
    queue's own fields (`open`, `state`) first had it walk every pending
    task, even for two ids or the last minute's tasks (290 ms of its CPU
    with 10,000 pending; 1 ms with `_id` first, 3 ms with `created_at`
    first: bench/findings.md 44). MongoDB's planner does not care."""
    query: dict = {"_id": {"$in": among}} if among is not None else {}
    return {**query, "created_at": {"$gte": since}, **TO_PLACE, "wait_reason": None}


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
