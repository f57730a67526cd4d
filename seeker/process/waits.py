"""What a seeker's parked requests wait for, besides the pulling helpers'
polls: the next event (key EVENT_WAITS) and a task's end (TASK_WAITS and
its id); serving/parking.py parks them."""

from __future__ import annotations

from seeker.store.events import EVENT_WAITS, TASK_WAITS
from serving.parking import Parking


def published(parking: Parking, event: dict) -> None:
    """An event published here: answer the requests waiting for the next
    one, and those waiting for the end of its task (a task's end is one)."""
    parking.wake(EVENT_WAITS)
    if event.get("task_id"):
        task_ended(parking, event["task_id"])


def task_ended(parking: Parking, task_id: str | None) -> None:
    """A task ended: the requests waiting for its end look again (None: any
    task may have, as a seeker without change streams hears it)."""
    keys = [TASK_WAITS + task_id] if task_id else parking.keys(TASK_WAITS)
    for key in keys:
        parking.wake(key)


def parked_kind(key: str) -> str:
    """Waits for events and tasks' ends are parked under keys with a "/"; a
    pulling helper's poll under its id, which has none."""
    return "wait" if "/" in key else "poll"
