"""The seeker's OpenAPI document: its routes, and the answers' schemas (the
task object, helper records, the event log) described as pydantic models
over the request models of seeker.models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from channel.openapi import Input, Result
from seeker.models import (
    ArrayIndices,
    AssignmentEvent,
    AssignmentState,
    HelperRegistration,
    Resources,
    TaskSpec,
    TaskState,
)
from seeker.store.events import KINDS
from serving.openapi import (
    OCTET_STREAM,
    Param,
    Reply,
    Route,
    common_routes,
    error,
    optional,
    service_document,
)
from serving.schema import Bytes

ANSWER = ConfigDict(json_schema_serialization_defaults_required=True)
SIZE_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*[kmgtKMGT]?(i?[bB])?\s*$"
Size = Annotated[str, Field(pattern=SIZE_PATTERN, examples=["512m", "4g", "1.5GiB"])]
STATES = [s.value for s in TaskState]


# --- what a user submits, as the API reads it -----------------------------------


class SubmittedResources(Resources):
    """Resources as submitted: sizes as bytes or as e.g. "512m", "4g"."""

    memory: Bytes | Size = Field(default=0, description="bytes, or a size such as '4g'")
    gpu_memory: Bytes | Size = Field(default=0, description="bytes of free memory per GPU")


class TaskSubmission(TaskSpec):
    """A task as submitted (TaskSpec, whose sizes may be written as "4g")."""

    resources: SubmittedResources = Field(default_factory=SubmittedResources)


class ArrayOfTasks(TaskSubmission):
    """An array as submitted: a task spec and how many of it."""

    array: ArrayIndices


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


class Reservation(BaseModel):
    """What an assignment holds on its helper while it is live."""

    cpus: float = 0
    memory: int = 0
    gpus: int = 0
    gpu_indices: list[int] = Field(default_factory=list)


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


class LastFailure(BaseModel):
    at: datetime
    reason: str


class Helper(HelperRegistration):
    """A helper as the seeker keeps it."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_serialization_defaults_required=True,
        json_schema_extra=optional("last_failure"),
    )

    running: int = Field(ge=0, description="assignments running there")
    registered_at: datetime
    updated_at: datetime
    last_seen: datetime
    failures: int = Field(ge=0, description="consecutive failed contacts")
    last_failure: LastFailure | None = Field(default=None, description="once a contact failed")


class RegisteredHelper(Helper):
    credential: str | None = Field(
        default=None,
        description="this helper's credential: only in the answer to a registration made "
        "with the join token (a new one each time; the one before stays valid 60 s)",
    )


class ListedHelper(Helper):
    online: bool = Field(description="heard from within the seeker's --liveness")


class HelperList(BaseModel):
    model_config = ANSWER

    helpers: list[ListedHelper] = Field(description="sorted by name")
    next: None


class Removed(BaseModel):
    model_config = ANSWER

    removed: str


class EventRecorded(BaseModel):
    """What the seeker made of an assignment event."""

    model_config = ANSWER

    task_id: str
    helper_id: str
    attempt: int
    state: AssignmentState = Field(description="the state the event reported")
    recorded: bool = Field(
        description="whether the event changed the assignment (false for a repeated or "
        "late event, or one from a helper the assignment is not for)"
    )


# --- routes --------------------------------------------------------------------------

TASK_ID = Param("task_id", {"type": "string"}, "path", description="16 hex digits")
ARRAY_ID = Param("array_id", {"type": "string"}, "path", description="arr-<12 hex digits>")
NO_ARRAY = error("no such array")
NO_TASK = error("no such task")
NO_CHANNEL = error("the channel cannot be reached, or refused the request")


def routes() -> list[Route]:
    return [
        *common_routes("seeker"),
        Route(
            "GET",
            "/",
            "The dashboard's page",
            {200: Reply("the page", {"type": "string"}, "text/html")},
            public=True,
            tag="dashboard",
        ),
        Route(
            "GET",
            "/dashboard/{filename}",
            "The dashboard's script and style",
            {
                200: Reply("the file", {"type": "string"}, "*/*"),
                404: error("no such file"),
            },
            params=(Param("filename", {"type": "string"}, "path"),),
            public=True,
            tag="dashboard",
        ),
        Route(
            "POST",
            "/api/v1/tasks",
            "Submit a task",
            {201: Reply("the task, pending: dispatch follows at once", TaskDetail)},
            body=TaskSubmission,
            tag="tasks",
        ),
        Route(
            "GET",
            "/api/v1/tasks",
            "List tasks, newest first",
            {200: Reply("the tasks", TaskList), 400: error("unknown state, bad limit or cursor")},
            params=(
                Param("state", {"type": "string", "enum": STATES}),
                Param("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
                Param(
                    "after",
                    {"type": "string", "pattern": r"^([0-9]{1,15}-[A-Za-z0-9_.-]{1,128})?$"},
                    description="the `next` of the previous page (empty: the first page)",
                ),
                Param("array_id", {"type": "string"}, description="only this array's tasks"),
            ),
            tag="tasks",
        ),
        Route(
            "POST",
            "/api/v1/arrays",
            "Submit an array: one task per index, all of one spec",
            {201: Reply("the array and its tasks, pending", ArrayCreated)},
            body=ArrayOfTasks,
            tag="tasks",
        ),
        Route(
            "GET",
            "/api/v1/arrays/{array_id}",
            "An array's tasks counted by state",
            {200: Reply("the counts", ArrayStatus), 404: NO_ARRAY},
            params=(ARRAY_ID,),
            tag="tasks",
        ),
        Route(
            "DELETE",
            "/api/v1/arrays/{array_id}",
            "Cancel every task of an array that has not ended",
            {
                200: Reply("the counts after, and how many were cancelled", ArrayStatus),
                404: NO_ARRAY,
            },
            params=(ARRAY_ID,),
            tag="tasks",
        ),
        Route(
            "POST",
            "/api/v1/inputs",
            "Upload a file for tasks to read (passed on to the channel, stored once per content)",
            {
                200: Reply("these bytes are stored already (the body is not read)", Input),
                201: Reply("stored", Input),
                400: error("the bytes' sha256 is not the one given; nothing is stored"),
                411: error("no Content-Length (a chunked body)"),
                413: error("larger than the channel's --max-artifact-bytes; nothing is stored"),
                415: error("the body is not application/octet-stream"),
                422: Reply(
                    "a missing or invalid query parameter",
                    {"$ref": "#/components/schemas/Invalid"},
                ),
                503: NO_CHANNEL,
            },
            params=(
                Param("name", {"type": "string", "minLength": 1, "maxLength": 255}, required=True),
                Param(
                    "sha256",
                    {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    required=True,
                    description="of the bytes sent (checked); the input's id is sha256:<hex>",
                ),
            ),
            raw_body=OCTET_STREAM,
            tag="inputs",
        ),
        Route(
            "GET",
            "/api/v1/inputs/{artifact_id}",
            "Describe an uploaded input or a result's artifact (from the channel)",
            {200: Reply("the file", Input), 404: error("no such input"), 503: NO_CHANNEL},
            params=(Param("artifact_id", {"type": "string"}, "path"),),
            tag="inputs",
        ),
        Route(
            "GET",
            "/api/v1/tasks/{task_id}",
            "One task, with its assignments",
            {200: Reply("the task", TaskDetail), 404: NO_TASK},
            params=(TASK_ID,),
            tag="tasks",
        ),
        Route(
            "DELETE",
            "/api/v1/tasks/{task_id}",
            "Cancel a task",
            {
                200: Reply("the task, now cancelled", TaskDetail),
                404: NO_TASK,
                409: error("the task already ended"),
            },
            params=(TASK_ID,),
            tag="tasks",
        ),
        Route(
            "GET",
            "/api/v1/tasks/{task_id}/results",
            "A task's results, from the channel",
            {200: Reply("every result", TaskResults), 404: NO_TASK, 503: NO_CHANNEL},
            params=(TASK_ID,),
            tag="tasks",
        ),
        Route(
            "POST",
            "/api/v1/tasks/{task_id}/events",
            "An assignment changed state (sent by helpers)",
            {200: Reply("what the event changed", EventRecorded), 404: NO_TASK},
            params=(TASK_ID,),
            body=AssignmentEvent,
            tag="helpers",
            roles=("helper",),
        ),
        Route(
            "GET",
            "/api/v1/artifacts/{artifact_id}",
            "Download an artifact (passed through from the channel)",
            {
                200: Reply("the bytes, streamed", {"type": "string"}, OCTET_STREAM),
                404: error("no such artifact"),
                503: NO_CHANNEL,
            },
            params=(Param("artifact_id", {"type": "string"}, "path"),),
            tag="tasks",
        ),
        Route(
            "GET",
            "/api/v1/events",
            "The event log, oldest first, from a sequence number on",
            {200: Reply("one page", EventPage), 400: error("after or limit out of range")},
            params=(
                Param(
                    "after",
                    {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0},
                    description="a seq: the events after it",
                ),
                Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
            ),
            tag="events",
        ),
        Route(
            "POST",
            "/api/v1/helpers",
            "Register a helper (and heartbeat)",
            {
                200: Reply("the helper record", RegisteredHelper),
                403: error(
                    "a helper's credential used to register another helper, "
                    "or the user token where a separate join token is set"
                ),
                409: error("the name is taken by another helper"),
            },
            body=HelperRegistration,
            tag="helpers",
            roles=("join", "helper"),
        ),
        Route(
            "GET",
            "/api/v1/helpers",
            "List helpers",
            {200: Reply("the helpers", HelperList)},
            tag="helpers",
        ),
        Route(
            "DELETE",
            "/api/v1/helpers/{helper_id}",
            "Remove a helper",
            {200: Reply("removed", Removed), 404: error("no such helper")},
            params=(Param("helper_id", {"type": "string"}, "path"),),
            tag="helpers",
        ),
    ]


DESCRIPTION = (
    "The seeker takes tasks (Docker workloads), places them on helpers and "
    "decides which result counts; helpers register with it and report what "
    "their assignments do. See docs/api.md."
)


document = service_document("Seeker", DESCRIPTION, routes)
