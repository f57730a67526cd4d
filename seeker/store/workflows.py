"""Tasks that build on tasks, in the seeker's database: dependencies (a
task held until the tasks it runs after succeed) and arrays (many tasks of
one spec, made in one insert).

A held task is pending with `open` = 0, so the dispatcher's query for work
to place (`open >= 1`, on its index) never sees it; it keeps the replicas to
open in `open_on_release` and the tasks it still waits for in `waiting_for`
(a multikey index finds a task's dependents). A dependency that succeeds is
pulled from its dependents' `waiting_for`, with where its output is
(`released_by`); a dependent left waiting for nothing gets its replicas (one
`$rename` of `open_on_release` to `open`). A dependency that fails or is
cancelled cancels its dependents. Each step is a conditional update of the
documents that are as expected (pending, still waiting for that task), so
it is safe to repeat and to run from several seekers at once."""

from __future__ import annotations

import secrets
from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from seeker.models import AssignmentState, TaskState
from seeker.store.task_document import new_task

PENDING = TaskState.PENDING.value
CANCELLED = TaskState.CANCELLED.value
HELD = "open_on_release"


class WorkflowStore:
    """Over the collections of the TaskStore (`tasks`, `assignments`)."""

    def __init__(self, tasks: Collection, assignments: Collection):
        self.tasks = tasks
        self.assignments = assignments

    @classmethod
    def in_db(cls, db: Database) -> WorkflowStore:
        return cls(db["tasks"], db["assignments"])

    def ensure_indexes(self) -> None:
        self.tasks.create_index([("waiting_for", ASCENDING)], name="dependents", sparse=True)
        self.tasks.create_index([(HELD, ASCENDING)], name="held", sparse=True)
        self.tasks.create_index(
            [("array_id", ASCENDING), ("array_index", ASCENDING)], name="by_array", sparse=True
        )

    # --- making tasks ------------------------------------------------------------

    @staticmethod
    def document(
        task_id: str,
        spec: dict,
        now: datetime,
        waiting_for: list[str] = (),
        array: tuple[str, int] | None = None,
    ) -> dict:
        """A new task; held while it waits for tasks, and one of an array."""
        doc = new_task(task_id, spec, now)
        if waiting_for:
            doc.update({"waiting_for": list(waiting_for), HELD: doc["open"], "open": 0})
        if array is not None:
            doc["array_id"], doc["array_index"] = array
        return doc

    def insert(self, docs: list[dict]) -> None:
        """One round trip for all of them (an array of 1,000 included)."""
        if len(docs) == 1:
            self.tasks.insert_one(docs[0])
        else:
            self.tasks.insert_many(docs, ordered=True)

    def fetch(self, task_ids: list[str]) -> list[dict]:
        """The tasks as they are now, in the order of `task_ids`."""
        found = {d["_id"]: d for d in self.tasks.find({"_id": {"$in": task_ids}})}
        return [found[t] for t in task_ids if t in found]

    def states(self, task_ids: list[str]) -> dict[str, dict]:
        """id -> the task's state and canonical result, for those that exist."""
        found = self.tasks.find({"_id": {"$in": task_ids}}, {"state": 1, "result": 1})
        return {d["_id"]: d for d in found}

    # --- a dependency ended --------------------------------------------------------

    def depended_on(self, task_ids: list[str]) -> None:
        """Tasks that others run after: their success is decided by reading
        their assignments and releasing the others (TaskStore.succeed_alone
        leaves them to settle()). Marked before the others are inserted."""
        self.tasks.update_many({"_id": {"$in": task_ids}}, {"$set": {"has_dependents": True}})

    def dependents(self, task_id: str, only: list[str] | None = None) -> list[str]:
        """The unfinished tasks still waiting for `task_id`."""
        query: dict = {"waiting_for": task_id, "state": {"$nin": TaskState.final()}}
        if only is not None:
            query["_id"] = {"$in": only}
        return [d["_id"] for d in self.tasks.find(query, {"_id": 1})]

    def dependents_of(
        self, task_ids: list[str], only: list[str] | None = None
    ) -> dict[str, list[str]]:
        """Of each of `task_ids`, the unfinished tasks still waiting for it
        (one query for all; a task waiting for two of them is under both)."""
        query: dict = {"waiting_for": {"$in": task_ids}, "state": {"$nin": TaskState.final()}}
        if only is not None:
            query["_id"] = {"$in": only}
        wanted = set(task_ids)
        found: dict[str, list[str]] = {}
        for doc in self.tasks.find(query, {"waiting_for": 1}):
            for dep in wanted.intersection(doc["waiting_for"]):
                found.setdefault(dep, []).append(doc["_id"])
        return found

    def release(self, task_id: str, source: dict, ids: list[str], now: datetime) -> int:
        """`task_id` succeeded: it no longer holds `ids` back, and its output
        is `source` (its canonical run: task_id, helper_id, attempt). Returns
        how many are now free to run."""
        if not ids:
            return 0
        self.tasks.update_many(
            {"_id": {"$in": ids}, "waiting_for": task_id, "state": PENDING},
            {
                "$pull": {"waiting_for": task_id},
                "$push": {"released_by": source},
                "$set": {"updated_at": now},
                "$inc": {"rev": 1},
            },
        )
        return self.open_released(now, ids)

    def open_released(self, now: datetime, ids: list[str] | None = None) -> int:
        """Give held tasks that wait for nothing any more their replicas (also
        what a release that stopped half-way left: the sweep calls it bare)."""
        query: dict = {HELD: {"$exists": True}, "waiting_for": [], "state": PENDING}
        if ids is not None:
            query["_id"] = {"$in": ids}
        update = {
            "$rename": {HELD: "open"},
            "$set": {"wait_reason": None, "updated_at": now},
            "$inc": {"rev": 1},
        }
        return self.tasks.update_many(query, update).modified_count

    def cancel(self, match: dict, reason: str, now: datetime) -> list[dict]:
        """Cancel the unfinished tasks that `match` (`{"waiting_for": id}`:
        what still waits for a task; `{"array_id": id}`: an array's), and
        return those this call cancelled (marked with a token of its own).
        The match is on an index: a list of 1,000 ids in `$in` is 4 times
        slower on SecantusDB."""
        token = secrets.token_hex(8)
        self.tasks.update_many(
            {**match, "state": {"$nin": TaskState.final()}},
            {
                "$set": {
                    "state": CANCELLED,
                    "error": reason,
                    "wait_reason": None,
                    "updated_at": now,
                    "cancelled_by": token,
                },
                "$unset": {HELD: ""},
                "$push": {"history": {"state": CANCELLED, "at": now}},
                "$inc": {"rev": 1},
            },
        )
        return list(self.tasks.find({**match, "cancelled_by": token}))

    def live_assignments_of(self, ids: list[str]) -> list[dict]:
        return list(
            self.assignments.find(
                {"task_id": {"$in": ids}, "state": {"$in": AssignmentState.live()}}
            )
        )

    # --- arrays --------------------------------------------------------------------

    def array_counts(self, array_id: str) -> dict[str, int]:
        """How many of the array's tasks are in each state."""
        pipeline = [
            {"$match": {"array_id": array_id}},
            {"$group": {"_id": "$state", "n": {"$sum": 1}}},
        ]
        return {d["_id"]: d["n"] for d in self.tasks.aggregate(pipeline)}

    def array_tasks(self, array_ids: list[str]) -> list[str]:
        found = self.tasks.find({"array_id": {"$in": array_ids}}, {"_id": 1})
        return [d["_id"] for d in found.sort("array_index", ASCENDING)]

    def array_last_open(self, array_id: str, at_most: int | None = None) -> str | None:
        """The id of the array's unfinished task of the highest index (at
        most `at_most`), or None when every such task has ended (or there is
        no such array)."""
        query: dict = {"array_id": array_id, "state": {"$nin": TaskState.final()}}
        if at_most is not None:
            query["array_index"] = {"$lte": at_most}
        doc = self.tasks.find_one(query, {"_id": 1}, sort=[("array_index", DESCENDING)])
        return doc["_id"] if doc else None

    def array_index(self, task_id: str) -> int | None:
        doc = self.tasks.find_one({"_id": task_id}, {"array_index": 1})
        return doc.get("array_index") if doc else None

    def unfinished(self, task_id: str) -> bool:
        """Whether the task is there and has not ended."""
        query = {"_id": task_id, "state": {"$nin": TaskState.final()}}
        return self.tasks.find_one(query, {"_id": 1}) is not None

    def array_of(self, array_id: str) -> dict | None:
        """One task of the array (its spec and when it was made)."""
        return self.tasks.find_one({"array_id": array_id}, {"spec": 1, "created_at": 1})
