"""What an ended assignment means for its task: a pure decision."""

from __future__ import annotations

from dataclasses import dataclass

from seeker.models import AssignmentState, TaskState


@dataclass(frozen=True)
class Decision:
    state: TaskState
    result: dict | None = None
    error: str | None = None


def decide(task: dict, assignments: list[dict], finished: dict) -> Decision:
    """The task's next state once assignment `finished` has a result.

    A success is the canonical result. A failure is retried (the task goes
    back to pending) while fewer than `max_attempts` runs have ended."""
    summary = {
        k: finished.get(k)
        for k in ("helper_id", "helper_name", "attempt", "status", "exit_code", "output_digest")
    }
    if finished.get("status") == "succeeded":
        return Decision(TaskState.SUCCEEDED, result=summary)
    runs = sum(1 for a in assignments if a["state"] == AssignmentState.FINISHED.value)
    if runs < task["spec"].get("max_attempts", 1):
        return Decision(TaskState.PENDING)
    return Decision(TaskState.FAILED, result=summary, error=describe_failure(finished))


def describe_failure(a: dict) -> str:
    status = a.get("status")
    if a.get("error"):
        return f"{status}: {a['error']}"
    if status == "failed":
        return f"container exited with code {a.get('exit_code')}"
    return str(status)
