"""The task document: what a new task holds (`new_task`, for TaskStore.create
and the bulk inserts of arrays alike) and what the API answers of one
(`task_json`), and where a page of them ended (`cursor_of`)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from seeker.models import TaskState
from seeker.placement.capacity import as_utc


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
        out["assignments"] = [
            {k: v for k, v in a.items() if k not in ("_id", "owed")} for a in assignments
        ]
    return out


def held_reason(doc: dict) -> str | None:
    """Why a task held for its dependencies waits (seeker/store/workflows.py)."""
    waiting = doc.get("waiting_for")
    if "open_on_release" not in doc or not waiting or doc["state"] != TaskState.PENDING.value:
        return None
    more = f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
    return f"waiting for {len(waiting)} task(s) to succeed: {', '.join(waiting[:5])}{more}"


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
CURSOR = re.compile(r"^([0-9]{1,15})-([A-Za-z0-9_.-]{1,128})$")


def cursor_of(task: dict) -> str:
    """`<created_at in ms since the epoch>-<task id>`: where a page ended."""
    millis = (as_utc(task["created_at"]) - EPOCH) // timedelta(milliseconds=1)
    return f"{millis}-{task['_id']}"


def parse_cursor(cursor: str) -> tuple[datetime, str]:
    m = CURSOR.match(cursor)
    if not m:
        raise ValueError(cursor)
    try:
        return EPOCH + timedelta(milliseconds=int(m.group(1))), m.group(2)
    except OverflowError:  # 15 digits of milliseconds: past the year 9999
        raise ValueError(cursor) from None
