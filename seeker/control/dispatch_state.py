"""What a dispatch pass works out of the documents it read, as pure
functions: the slots each helper's live assignments hold, the task as an
assignment left it, where its push failed lately, the task's view for the
scheduler, and what a helper is sent of an assignment. Used by
dispatcher.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from channel.models import ResultStatus
from seeker.control.inputs import assignment_inputs
from seeker.models import AssignmentState, TaskState
from seeker.placement.capacity import as_utc
from seeker.placement.live import LiveSet
from seeker.placement.views import HelperView, TaskView
from seeker.store.assignments import slot_number


def slots_in_use(live: LiveSet, helper_id: str) -> set[int]:
    """The slot numbers a helper's live assignments hold."""
    return {n for n in map(slot_number, live.of(helper_id)) if n is not None}


def after_assign(task: dict, now: datetime) -> dict:
    """The task as TaskStore.assign() left it (pinned on its rev, so exactly
    this): one more attempt, one fewer replica to place, dispatched."""
    placed = {
        **task,
        "attempts": task["attempts"] + 1,
        "open": task["open"] - 1,
        "rev": task["rev"] + 1,
        "wait_reason": None,
        "updated_at": now,
    }
    if task["state"] == TaskState.PENDING.value:
        placed["state"] = TaskState.DISPATCHED.value
    return placed


def told_why(task: dict, told: dict[str, str]) -> dict:
    """The task as a pass's wait reasons (task id -> reason) left it."""
    return {**task, "wait_reason": told[task["_id"]]} if task["_id"] in told else task


def refused_lately(assignments: list[dict], since: datetime) -> set[str]:
    """Helpers where a push or offer of this task failed after `since`."""
    return {
        a["helper_id"]
        for a in assignments
        if a["state"] == AssignmentState.PUSH_FAILED.value
        and (as_utc(a.get("finished_at")) or since) > since
    }


def has_room(view: HelperView) -> bool:
    """Online, with a slot (or a place in its queue) free."""
    return view.online and view.running < view.slots + view.prefetch


def all_full(views: dict[str, HelperView]) -> bool:
    """Some helper is online and every online helper's slots (and queue) are taken."""
    some_online = False
    for v in views.values():  # stops at the first with room: in most passes one of the first
        if has_room(v):
            return False
        some_online = some_online or v.online
    return some_online


def full(view: HelperView) -> HelperView:
    return replace(view, running=view.slots + view.prefetch)


def task_view(task: dict, assignments: list[dict]) -> TaskView:
    """A replicated task goes only to helpers that have not run it yet; a
    single one may retry where it failed (with a penalty)."""
    if task["spec"].get("replicas", 1) > 1:
        busy = {AssignmentState.PUSH_FAILED.value}
        running_on = {a["helper_id"] for a in assignments if a["state"] not in busy}
    else:
        running_on = {a["helper_id"] for a in assignments if a["state"] in AssignmentState.live()}
    failed_on = {
        a["helper_id"]
        for a in assignments
        if a["state"] == AssignmentState.FINISHED.value
        and a.get("status") != ResultStatus.SUCCEEDED
    }
    return TaskView.from_spec(task["_id"], task["spec"], running_on, failed_on)


def assignment_payload(task: dict, helper: dict, attempt: int, reservation: dict) -> dict:
    spec = task["spec"]
    return {
        "task_id": task["_id"],
        "attempt": attempt,
        "helper_id": helper["helper_id"],
        "image": spec["image"],
        "command": spec.get("command", []),
        "env": spec.get("env", {}),
        "resources": {k: reservation.get(k, 0) for k in ("cpus", "memory", "gpus")},
        "gpu_indices": reservation.get("gpu_indices", []),
        "gpu_uuids": reservation.get("gpu_uuids", []),
        "timeout": spec.get("timeout"),
        "pull": spec.get("pull", "if-missing"),
        "capabilities": spec.get("capabilities", []),
        "mounts": spec.get("mounts", []),
        "inputs": assignment_inputs(task),  # the seeker's push adds a grant to each
        "array_id": task.get("array_id"),
        "array_index": task.get("array_index"),
    }
