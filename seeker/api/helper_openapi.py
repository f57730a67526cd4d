"""What the seeker's OpenAPI document says of the helper routes'
answers (seeker/api/helper_routes.py): a helper as the seeker keeps it,
lists it and registers it, a heartbeat's and a poll's answers, what an
assignment event changed, and the list's query parameters."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from helper.models import Assignment
from seeker.api.openapi import ANSWER
from seeker.helper_models import HELPER_NAME, HelperRegistration
from seeker.models import AssignmentState
from serving.operations import optional


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
    stop: list[str] = Field(
        description="assignment keys among those it runs that it is to stop (cancelled, "
        "decided, or run elsewhere while it was away)"
    )
    heartbeat: float = Field(
        description="seconds between heartbeats the seeker asks for (it grows with the fleet)"
    )


class Beat(BaseModel):
    """The answer to a heartbeat."""

    model_config = ANSWER

    heartbeat: float = Field(
        description="seconds between heartbeats the seeker asks for (it grows with the fleet)"
    )
    stop: list[str] = Field(description="assignment keys among those it runs to stop")


class Work(BaseModel):
    """A pulling helper's work: empty when nothing came within the wait."""

    model_config = ANSWER

    assignments: list[Assignment] = Field(
        description="offers to take (acknowledge each with an 'accepted' event naming "
        "this boot_id, and run it only if the answer says run)"
    )
    stop: list[str] = Field(description="assignment keys among those it runs to stop")
    wait: float = Field(
        description="the longest this seeker lets a poll wait now, in seconds: its "
        "--poll-wait, or more in a large fleet (a heartbeat's interval); ask for it next"
    )
    heartbeat: float = Field(description="seconds between heartbeats the seeker asks for")


class DeviceUse(BaseModel):
    """How much of one GPU (or MIG instance) live assignments hold."""

    index: int
    uuid: str
    profile: str = Field(description="a MIG instance's profile; empty for a whole GPU")
    taken: float = Field(ge=0, description="0: free, 1: held whole, between: shares")
    memory_reserved: int = Field(ge=0, description="bytes of GPU memory reserved there")


class ListedHelper(Helper):
    online: bool = Field(
        description="heard from within its liveness deadline (the seeker's --liveness, or two "
        "heartbeats once the fleet's size made them rarer) and, pulling, its poll not dropped"
    )
    gpu_use: list[DeviceUse] = Field(description="each GPU device, in index order")


class HelperList(BaseModel):
    model_config = ANSWER

    helpers: list[ListedHelper] = Field(description="sorted by name")
    next: str | None = Field(description="pass as `after` for the next page; null on the last page")
    total: int = Field(ge=0, description="helpers registered, in the whole fleet")
    offline: int = Field(ge=0, description="of those, how many are offline now")


class HelperQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000)
    after: str = Field(
        default=None,
        pattern=f"^({HELPER_NAME.pattern.strip('^$')})?$",
        description="the `next` of the previous page (empty: the first page)",
    )
    online: bool = Field(default=None, description="only the helpers online (true) or offline")


class Removed(BaseModel):
    model_config = ANSWER

    removed: str


class EventRecorded(BaseModel):
    """What the seeker made of an assignment event."""

    model_config = ConfigDict(
        json_schema_serialization_defaults_required=True, json_schema_extra=optional("run")
    )

    task_id: str
    helper_id: str
    attempt: int
    state: AssignmentState = Field(description="the state the event reported")
    recorded: bool = Field(
        description="whether the event changed the assignment (false for a repeated or "
        "late event, or one from a helper the assignment is not for)"
    )
    run: bool | None = Field(
        default=None,
        description="for an 'accepted' event naming a boot_id (pull mode): whether that "
        "helper process is to run the assignment",
    )
