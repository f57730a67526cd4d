"""What the seeker's OpenAPI document says beyond its routes: the answers'
schemas (the task object, arrays, results, the event log) as pydantic
models over the request models of seeker.models, the query parameters, its
title and description; the helper routes' in seeker/api/helper_openapi.py.
The routes declare themselves in seeker/api/app.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from channel.openapi import Result
from seeker.models import ArraySubmission, AssignmentState, Resources, TaskSpec, TaskState
from seeker.store.events import KINDS, MAX_EVENT_WAIT
from serving.operations import optional
from serving.schema import Bytes

TASK_ID = {"task_id": "16 hex digits"}  # the path parameter, as routes declare it
ANSWER = ConfigDict(json_schema_serialization_defaults_required=True)
SIZE_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*[kmgtKMGT]?(i?[bB])?\s*$"
Size = Annotated[str, Field(pattern=SIZE_PATTERN, examples=["512m", "4g", "1.5GiB"])]


# --- what a user submits, as the API reads it -----------------------------------


class SubmittedResources(Resources):
    """Resources as submitted: sizes as bytes or as e.g. "512m", "4g"."""

    memory: Bytes | Size = Field(default=0, description="bytes, or a size such as '4g'")
    gpu_memory: Bytes | Size = Field(default=0, description="bytes of free memory per GPU")


class TaskSubmission(TaskSpec):
    """A task as submitted (TaskSpec, whose sizes may be written as "4g")."""

    resources: SubmittedResources = Field(default_factory=SubmittedResources)


class ArrayOfTasks(TaskSubmission, ArraySubmission):
    """An array as submitted: a task spec and how many of it."""


# --- answers -----------------------------------------------------------------------


class HistoryEntry(BaseModel):
    model_config = ANSWER

    state: TaskState
    at: datetime


class Vote(BaseModel):
    model_config = ANSWER

    output_digest: str | None
    helpers: list[str | None] = Field(description="names of the helpers that agree")


class CanonicalResult(BaseModel):
    """The run whose result counts; the full result is in the channel."""

    model_config = ANSWER

    helper_id: str
    helper_name: str | None
    attempt: int
    status: str | None
    exit_code: int | None
    output_digest: str | None
    result_id: str = Field(description="its id in the channel: <task_id>.<attempt>")


class ReservedDevice(BaseModel):
    """A GPU, or a MIG instance, that an assignment holds (all or a share of it)."""

    index: int = Field(description="the GPU's index on its helper")
    uuid: str = Field(description="the device's uuid (a MIG instance's own)")
    name: str = ""
    profile: str = Field(default="", description="a MIG instance's profile, e.g. '3g.20gb'")
    share: float = Field(description="1 for a whole device, else the task's share of it")
    memory: int = Field(description="bytes of GPU memory asked (reserved, for a share)")


class Reservation(BaseModel):
    """What an assignment holds on its helper while it is live."""

    cpus: float = 0
    memory: int = 0
    gpus: int | float = 0
    gpu_indices: list[int] = Field(default_factory=list)
    gpu_uuids: list[str] = Field(default_factory=list)
    gpu_devices: list[ReservedDevice] = Field(default_factory=list)


class AssignmentRecord(BaseModel):
    """One run of one replica of a task on a helper."""

    task_id: str
    attempt: int = Field(ge=1)
    helper_id: str
    helper_name: str | None
    state: AssignmentState
    reservation: Reservation
    assigned_at: datetime
    boot_id: str | None = None
    accepted_at: datetime | None = None
    fetching_at: datetime | None = None
    pulling_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    status: str | None = None
    exit_code: int | None = None
    output_digest: str | None = None
    error: str | None = None


class Task(TaskSpec):
    """The task object: the submission normalised (sizes in bytes, defaults
    filled in) and its state."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_serialization_defaults_required=True,
        json_schema_extra=optional("array_id", "array_index", "waiting_for"),
    )

    task_id: str = Field(description="16 hex digits")
    state: TaskState
    attempts: int = Field(ge=0, description="assignments made so far, pushed or not")
    wanted: int = Field(ge=0, description="replicas the task should have had in all so far")
    votes: list[Vote]
    wait_reason: str | None
    result: CanonicalResult | None
    error: str | None
    history: list[HistoryEntry]
    created_at: datetime
    updated_at: datetime
    array_id: str | None = Field(default=None, description="a task of an array: the array")
    array_index: int | None = Field(default=None, ge=0, description="and its index in it")
    waiting_for: list[str] | None = Field(
        default=None, description="a task with `after`: the tasks it still waits for"
    )


class TaskDetail(Task):
    """A task with every assignment."""

    assignments: list[AssignmentRecord]


class TaskList(BaseModel):
    model_config = ANSWER

    tasks: list[Task] = Field(description="newest first, without assignments")
    next: str | None = Field(description="pass as `after` for the next page; null on the last page")


class ArrayTask(BaseModel):
    model_config = ANSWER

    task_id: str
    array_index: int = Field(ge=0)
    state: TaskState


class ArrayCreated(BaseModel):
    model_config = ANSWER

    array_id: str = Field(description="arr-<12 hex digits>")
    size: int = Field(ge=1)
    tasks: list[ArrayTask] = Field(description="by index")


class ArrayStatus(BaseModel):
    model_config = ConfigDict(
        json_schema_serialization_defaults_required=True, json_schema_extra=optional("cancelled")
    )

    array_id: str
    size: int = Field(ge=1)
    counts: dict[str, int] = Field(description="tasks by state (states with none left out)")
    summary: str = Field(examples=["180 succeeded, 15 running, 5 pending"])
    done: bool = Field(description="every task has ended")
    cancelled: int | None = Field(default=None, description="DELETE: how many this cancelled")


class FlaggedResult(Result):
    canonical: bool = Field(description="the result the task's `result` names")


class TaskResults(BaseModel):
    model_config = ANSWER

    task_id: str
    state: TaskState
    results: list[FlaggedResult] = Field(description="every result the channel holds, oldest first")
    next: None


class Event(BaseModel):
    """One entry of the event log; its other fields depend on `type`."""

    model_config = ConfigDict(extra="allow")

    seq: int = Field(ge=1)
    type: Literal[KINDS]
    at: datetime


class EventPage(BaseModel):
    model_config = ANSWER

    events: list[Event]
    next: int | None = Field(description="the last seq of the page; null when empty")


# --- query parameters (read by the views themselves) ------------------------------


class TaskQuery(BaseModel):
    state: TaskState = None
    limit: int = Field(default=50, ge=1, le=500)
    after: str = Field(
        default=None,
        pattern=r"^([0-9]{1,15}-[A-Za-z0-9_.-]{1,128})?$",
        description="the `next` of the previous page (empty: the first page)",
    )
    array_id: str = Field(default=None, description="only this array's tasks")


def wait_field(description: str):
    """The `wait` of a blocking query: 0 (answer at once) to MAX_EVENT_WAIT seconds."""
    return Field(default=0, ge=0, le=MAX_EVENT_WAIT, description=description)


class TaskWaitQuery(BaseModel):
    wait: int = wait_field(
        "seconds to wait for the task to end when it has not yet (a blocking "
        "query): answered when it ends, or as it is then when the time is up"
    )


class ArrayWaitQuery(BaseModel):
    wait: int = wait_field(
        "seconds to wait for every task of the array to end when some have "
        "not yet (a blocking query): answered when the last ends, or as the counts are "
        "then when the time is up"
    )


class InputUploadQuery(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    sha256: str = Field(
        pattern="^[0-9a-f]{64}$",
        description="of the bytes sent (checked); the input's id is sha256:<hex>",
    )


class EventQuery(BaseModel):
    after: int = Field(default=0, ge=0, le=2**62, description="a seq: the events after it")
    limit: int = Field(default=100, ge=1, le=1000)
    wait: int = wait_field(
        "seconds to wait for an event after `after` when there is none yet "
        "(a blocking query): answered at the first one, or empty when the time is up"
    )


TITLE = "Seeker"
DESCRIPTION = (
    "The seeker takes tasks (Docker workloads), places them on helpers and "
    "decides which result counts; helpers register with it and report what "
    "their assignments do. See docs/api.md."
)
NO_TASK = "no such task"
NO_ARRAY = "no such array"
NO_CHANNEL = "the channel cannot be reached, or refused the request"
