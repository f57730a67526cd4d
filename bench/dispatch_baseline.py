"""`bench dispatch`'s baseline: the writes of one task's life in Seeker's
data model as first built (9), made straight with pymongo by CLIENTS
threads for as many tasks as the seeker ran (see bench/dispatch.py)."""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from pymongo import ReturnDocument

from bench.common import IMAGE
from bench.deployment import CLIENTS
from channel.models import ResultStatus
from channel.store import ResultStore
from seeker.models import AssignmentState, TaskState
from seeker.store.tasks import TaskStore

RAW_WRITES = 9  # per task, in the baseline


def raw_writes(db, n: int) -> float:
    """The baseline: the 9 writes of each task's life, straight with pymongo
    on CLIENTS threads; returns the wall time."""
    tasks, assignments = TaskStore(db), db["assignments"]
    tasks.ensure_indexes()
    results = ResultStore(db)
    results.ensure_indexes()
    coll = db["tasks"]
    spec = {"image": IMAGE, "command": ["true"], "env": {}, "replicas": 1}

    def life(i: int) -> None:
        now = datetime.now(timezone.utc)
        tid, aid = f"raw{i:07d}", f"raw{i:07d}.1"
        coll.insert_one(
            {
                "_id": tid,
                "spec": spec,
                "state": TaskState.PENDING,
                "created_at": now,
                "updated_at": now,
                "attempts": 0,
                "wanted": 1,
                "open": 1,
                "rev": 0,
                "result": None,
                "error": None,
                "votes": [],
                "wait_reason": None,
                "history": [{"state": TaskState.PENDING, "at": now}],
            }
        )
        coll.find_one_and_update(
            {"_id": tid, "rev": 0, "state": TaskState.PENDING, "open": {"$gt": 0}},
            {
                "$set": {"state": TaskState.DISPATCHED, "updated_at": now},
                "$inc": {"attempts": 1, "open": -1, "rev": 1},
                "$push": {"history": {"state": TaskState.DISPATCHED, "at": now}},
            },
            return_document=ReturnDocument.AFTER,
        )
        assignments.insert_one(
            {
                "_id": aid,
                "task_id": tid,
                "attempt": 1,
                "helper_id": "h",
                "state": AssignmentState.PUSHING,
                "assigned_at": now,
                "reservation": {},
            }
        )
        A = AssignmentState
        for old, new in ((A.PUSHING, A.ACCEPTED), (A.ACCEPTED, A.RUNNING)):
            assignments.find_one_and_update({"_id": aid, "state": old}, {"$set": {"state": new}})
        coll.find_one_and_update(
            {"_id": tid, "state": TaskState.DISPATCHED},
            {
                "$set": {"state": TaskState.RUNNING},
                "$push": {"history": {"state": TaskState.RUNNING, "at": now}},
            },
        )
        results.results.insert_one(
            {
                "task_id": tid,
                "helper_id": "h",
                "attempt": 1,
                "image": IMAGE,
                "status": ResultStatus.SUCCEEDED,
                "exit_code": 0,
                "stdout": "",
                "stderr": "",
                "output_digest": "sha256:" + "0" * 64,
                "finished_at": now,
                "sent_at": now,
                "received_at": now,
                "result_id": secrets.token_hex(12),
            }
        )
        assignments.find_one_and_update(
            {"_id": aid, "state": AssignmentState.RUNNING},
            {"$set": {"state": AssignmentState.FINISHED, "status": ResultStatus.SUCCEEDED}},
        )
        coll.find_one_and_update(
            {"_id": tid, "rev": 1, "state": {"$nin": TaskState.final()}},
            {
                "$set": {"state": TaskState.SUCCEEDED, "result": {"helper_id": "h", "attempt": 1}},
                "$inc": {"rev": 1},
                "$push": {"history": {"state": TaskState.SUCCEEDED, "at": now}},
            },
        )

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(life, range(n)))
    return time.perf_counter() - t0
