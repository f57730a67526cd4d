"""What helpers send the seeker (registrations, heartbeats, polls, events
about their assignments), and what they report of their resources. The
tasks' own schemas and the states are in seeker/models.py."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from channel.models import ResultStatus
from helper.images import MAX_IMAGES, normalised_images
from seeker.models import AssignmentState, ImageReference, Labels
from serving.schema import INT64_MAX, Bytes, Int64, StrEnum


class MigInstance(BaseModel):
    """One MIG instance of a GPU: a device of its own that tasks are given."""

    model_config = ConfigDict(allow_inf_nan=False)

    uuid: str = Field(default="", max_length=256)
    profile: str = Field(default="", max_length=64, description="e.g. '3g.20gb'")
    memory_total: Bytes = 0
    memory_free: Bytes | None = Field(default=None, description="absent: all of it")


class GpuInfo(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    index: int = Field(ge=0, le=1024)
    name: str = Field(default="", max_length=256)
    uuid: str = Field(default="", max_length=256)
    memory_total: Bytes = 0
    memory_free: Bytes = 0
    utilization: float | None = None
    compute_capability: str | None = Field(default=None, max_length=16, description="e.g. '8.0'")
    cuda_version: str | None = Field(
        default=None, max_length=16, description="the highest CUDA the driver supports: '12.4'"
    )
    mig: list[MigInstance] = Field(
        default_factory=list,
        max_length=64,
        description="MIG on: its instances, each a device of its own (the GPU is given only "
        "as these)",
    )


class HelperResources(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    cpus: float = Field(default=0, ge=0, le=100_000)
    cpu_load: float | None = Field(default=None, ge=0, le=1_000_000)
    memory_total: Bytes = 0
    memory_available: Bytes = 0
    disk_free: Bytes = 0
    gpus: list[GpuInfo] = Field(default_factory=list)
    images: list[ImageReference] = Field(
        default_factory=list,
        max_length=MAX_IMAGES,
        description="the image references the host has (tags and digests), which the "
        "scheduler prefers for tasks of those images; stored normalised "
        "('busybox' as 'docker.io/library/busybox:latest')",
    )

    @field_validator("images")
    @classmethod
    def _normalised(cls, images: list[str]) -> list[str]:
        return normalised_images(images)


class HelperPolicy(BaseModel):
    images: list[str] = Field(default_factory=list, description="allowed image patterns")
    mounts: list[str] = Field(default_factory=list, description="host paths that may be mounted")


class HelperMode(StrEnum):
    """How a helper gets its work: the seeker pushes it to the helper's URL,
    or the helper, which accepts no connections, pulls it (a long poll)."""

    PUSH = "push"
    PULL = "pull"


# a helper's --heartbeat, sent as a limit: it beats at least this often
HeartbeatLimit = Annotated[float, Field(ge=0.1, le=3600)]
BEATS_AT_MOST = (
    "the longest it waits between heartbeats (its --heartbeat); none: as long as the seeker asks"
)


# a helper's name: a host name's characters, unique in the fleet
HELPER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class HelperRegistration(BaseModel):
    """What a helper sends when it registers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    helper_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    # a host name: it names folders too (seeker results --download)
    name: str = Field(pattern=HELPER_NAME.pattern)
    mode: HelperMode = HelperMode.PUSH
    url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        max_length=512,
        description="where the seeker pushes work (push mode only)",
    )
    slots: int = Field(default=1, ge=1, le=1024)
    prefetch: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="assignments it accepts beyond its slots: each waits there and starts "
        "the moment a container exits; the seeker uses them only when no helper has a free "
        "slot for the task, and not for a task that needs GPUs",
    )
    resources: HelperResources = Field(default_factory=HelperResources)
    labels: Labels = Field(default_factory=dict)
    version: str | None = Field(default=None, max_length=64)
    boot_id: str | None = Field(default=None, max_length=64)
    policy: HelperPolicy = Field(default_factory=lambda: HelperPolicy())
    running: list[str] = Field(default_factory=list, description="assignment keys it runs")
    heartbeat: HeartbeatLimit | None = Field(default=None, description=BEATS_AT_MOST)

    @model_validator(mode="after")
    def _reachable(self) -> HelperRegistration:
        if self.mode == HelperMode.PUSH and not self.url:
            raise ValueError("a push-mode helper needs a url (or registers with mode 'pull')")
        if self.mode == HelperMode.PULL:
            self.url = None  # the seeker never connects to a pulling helper
        return self


MAX_POLL_WAIT = 300.0  # seconds: the longest a poll may wait
ASSIGNMENT_KEY = r"^[A-Za-z0-9_.-]{1,160}$"
AssignmentKeys = list[Annotated[str, StringConstraints(pattern=ASSIGNMENT_KEY)]]


class Heartbeat(BaseModel):
    """A registered helper saying it is alive, and what it runs (nothing
    else changed since its last registration)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    boot_id: str = Field(min_length=1, max_length=64, description="the helper process")
    running: AssignmentKeys = Field(default_factory=list, max_length=4096)
    heartbeat: HeartbeatLimit | None = Field(default=None, description=BEATS_AT_MOST)


class PollRequest(BaseModel):
    """A pulling helper asking for its work: what it runs and has just
    finished (so nothing it has is handed out again), and how long it waits
    for an answer."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    boot_id: str = Field(min_length=1, max_length=64, description="the helper process")
    running: AssignmentKeys = Field(default_factory=list, max_length=4096)
    done: AssignmentKeys = Field(
        default_factory=list, max_length=4096, description="runs finished lately"
    )
    wait: float = Field(
        default=25,
        ge=0,
        le=MAX_POLL_WAIT,
        description="the longest to wait for work (the seeker may wait less: its answers "
        "say how long it would wait)",
    )
    heartbeat: HeartbeatLimit | None = Field(
        default=None, description="its --heartbeat: it beats at least this often, besides its polls"
    )


class AssignmentEvent(BaseModel):
    """What a helper reports about an assignment."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    helper_id: str = Field(min_length=1, max_length=128)
    attempt: int = Field(ge=1, le=INT64_MAX)
    state: AssignmentState
    status: ResultStatus | None = None
    exit_code: Int64 | None = None
    output_digest: str | None = Field(default=None, max_length=80)
    error: str | None = Field(default=None, max_length=8192)
    boot_id: str | None = Field(
        default=None, max_length=64, description="the helper process that takes it (pull mode)"
    )
    started_at: datetime | None = Field(
        default=None,
        description="with finished: when its container started (the helper's clock; a "
        "container that ended at once was never reported running)",
    )
