"""Results in MongoDB: stored once per (task_id, helper_id, attempt), listed per task."""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from serving.errors import Conflict

MAX_PAGE = 500
LIST_INDEXES = {
    "by_task": ("task_id",),
    "by_task_status": ("task_id", "status"),
    "by_task_helper": ("task_id", "helper_id"),
    "by_task_helper_status": ("task_id", "helper_id", "status"),
}


class ResultStore:
    def __init__(self, db: Database):
        self.results = db["results"]

    def ensure_indexes(self) -> None:
        self.results.create_index(
            [("task_id", ASCENDING), ("helper_id", ASCENDING), ("attempt", ASCENDING)],
            unique=True,
            name="one_result_per_attempt",
        )
        # One index per list query: equality fields first, then the `_id` the
        # page is ordered and cut by.
        for name, fields in LIST_INDEXES.items():
            self.results.create_index([(f, ASCENDING) for f in (*fields, "_id")], name=name)
        self.results.create_index("result_id", unique=True, name="by_result_id")

    def add(self, result: dict, received_at: datetime) -> tuple[dict, bool]:
        """Store a result; returns (the stored document, whether it is new).

        Posting the same (task_id, helper_id, attempt) again returns the first
        copy untouched. A result's id is `<task_id>.<attempt>` (attempts are
        unique within a task), so the seeker names the canonical result
        without asking; another helper's result for the same attempt is a
        Conflict."""
        doc = dict(
            result,
            received_at=received_at,
            result_id=result_id(result["task_id"], result["attempt"]),
        )
        try:
            self.results.insert_one(doc)
            return _public(doc), True
        except DuplicateKeyError:
            existing = self.results.find_one({"result_id": doc["result_id"]})
            if existing is None or existing["helper_id"] != result["helper_id"]:
                raise Conflict(
                    f"attempt {result['attempt']} of task {result['task_id']} "
                    "already has a result from another helper",
                    "a result is accepted only from the helper that ran the attempt",
                ) from None
            return _public(existing), False

    def for_task(
        self,
        task_id: str,
        limit: int = 100,
        after: str | None = None,
        newest_first: bool = False,
        status: str | None = None,
        helper_id: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """One page of a task's results (of one status, of one helper, when
        given), in insertion order, and the cursor for the next page (None on
        the last)."""
        limit = max(1, min(limit, MAX_PAGE))
        query: dict = {"task_id": task_id}
        if helper_id is not None:
            query["helper_id"] = helper_id
        if status is not None:
            query["status"] = status
        if after:
            try:
                query["_id"] = {"$lt" if newest_first else "$gt": ObjectId(after)}
            except InvalidId as exc:
                raise ValueError("cursor") from exc
        order = DESCENDING if newest_first else ASCENDING
        docs = list(self.results.find(query).sort("_id", order).limit(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        cursor = str(docs[-1]["_id"]) if more else None
        return [_public(d) for d in docs], cursor

    def get(self, result_id: str) -> dict | None:
        doc = self.results.find_one({"result_id": result_id})
        return _public(doc) if doc else None


def result_id(task_id: str, attempt: int) -> str:
    return f"{task_id}.{attempt}"


def _public(doc: dict) -> dict:
    out = {k: v for k, v in doc.items() if k != "_id"}
    return out
