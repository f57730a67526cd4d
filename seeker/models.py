"""Task and helper schemas and states, shared by the API, the CLI and the client."""

from __future__ import annotations

import math
import re
from enum import Enum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from helper.policy import SAFE_CAPABILITIES
from serving.schema import INT64_MAX, Bytes, Int64

# registry/name[:tag][@digest], lower-case path components (Docker's grammar, simplified)
IMAGE_RE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# label keys (and constraint keys): what Kubernetes allows, and never a NUL
# or a '$', which the database cannot take in a key
LABEL_KEY = r"^[A-Za-z0-9]([A-Za-z0-9_./-]{0,126}[A-Za-z0-9])?$"
Labels = dict[
    Annotated[str, StringConstraints(pattern=LABEL_KEY)],
    Annotated[str, StringConstraints(max_length=256)],
]
UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class TaskState(str, Enum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_TASK_STATES = (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


class AssignmentState(str, Enum):
    PUSHING = "pushing"  # recorded, being sent to the helper
    ACCEPTED = "accepted"  # the helper took it
    FETCHING = "fetching"  # the helper is fetching the task's inputs
    PULLING = "pulling"  # the helper is pulling the image
    RUNNING = "running"  # the container started
    FINISHED = "finished"  # a result exists (any status)
    PUSH_FAILED = "push_failed"  # the helper could not be reached or refused
    LOST = "lost"  # its helper died, was purged or restarted without it


LIVE_ASSIGNMENT_STATES = (
    AssignmentState.PUSHING,
    AssignmentState.ACCEPTED,
    AssignmentState.FETCHING,
    AssignmentState.PULLING,
    AssignmentState.RUNNING,
)


def parse_bytes(value: int | str) -> int:
    """4g, 512m, 1.5GiB, 1024 -> bytes (binary units)."""
    if isinstance(value, bool):
        raise ValueError("expected bytes or a size like '4g'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtKMGT]?)(?:i?[bB])?\s*", str(value))
    if not m:
        raise ValueError(f"cannot read {value!r} as a size: use bytes or e.g. '512m', '4g'")
    size = float(m.group(1)) * UNITS[m.group(2).lower()]
    if not math.isfinite(size) or size > INT64_MAX:
        raise ValueError(f"{value!r} is too large")
    return int(size)


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    cpus: float = Field(default=0, ge=0, le=1024)
    memory: Bytes = Field(default=0, description="bytes, or a size such as '4g'")
    gpus: int = Field(default=0, ge=0, le=64)
    gpu_memory: Bytes = Field(default=0, description="bytes of free memory per GPU")

    @field_validator("memory", "gpu_memory", mode="before")
    @classmethod
    def _sizes(cls, v):
        return parse_bytes(v)


MAX_REPLICAS = 32


class SelectionPolicy(BaseModel):
    """Which result counts when a task runs on several helpers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["first", "quorum", "all"] = "first"
    quorum: int | None = Field(
        default=None, ge=1, le=MAX_REPLICAS, description="quorum: how many identical outputs decide"
    )
    max_replicas: int | None = Field(
        default=None, ge=1, le=MAX_REPLICAS, description="quorum: most replicas ever sent"
    )
    cancel_rest: bool = Field(default=True, description="first: cancel the others on success")


def container_path(path: str) -> str:
    """An absolute, normalised path inside a container, not / and not under
    /output (which comes back as the result's output.tar)."""
    if not path.startswith("/") or path.startswith("//"):
        raise ValueError("must be an absolute path, e.g. /input/weights.bin")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise ValueError("must not contain control characters")
    parts = path.split("/")[1:]
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError("must not contain '..', '.' or empty segments, nor end with '/'")
    if parts[0] == "output":
        raise ValueError("must not be /output or under it: /output is what the task writes")
    return path


class Mount(BaseModel):
    """A host path, mounted only where the helper's operator allows it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    source: str = Field(pattern=r"^/[^\x00-\x1f]*$", max_length=1024)
    target: str = Field(pattern=r"^/[^\x00-\x1f]*$", max_length=1024)
    read_only: bool = True


TASK_ID = r"^[A-Za-z0-9_.-]{1,128}$"
ARTIFACT_ID = r"^(sha256:[0-9a-f]{64}|[0-9a-f]{24})$"
MAX_INPUTS = 64
MAX_AFTER = 100


class InputSpec(BaseModel):
    """A file the task reads, mounted read-only at `path`: an uploaded input
    or a result's artifact by id, or the output (the /output directory) of a
    task it runs after."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    artifact_id: str | None = Field(
        default=None,
        pattern=ARTIFACT_ID,
        description="an uploaded input (sha256:<hex>) or a result's artifact (24 hex digits)",
    )
    output_of: str | None = Field(
        default=None,
        pattern=TASK_ID,
        description="a task whose /output this task reads (it then runs after that task)",
    )
    path: str | None = Field(
        default=None,
        max_length=1024,
        description="where the container sees it; default /input/<name> "
        "(/input/<task id> for output_of)",
    )
    unpack: bool = Field(
        default=False, description="artifact_id: a tar archive, mounted unpacked as a directory"
    )
    name: str | None = Field(default=None, description="set by the seeker: the stored name")
    sha256: str | None = Field(default=None, description="set by the seeker: of the bytes")
    size: int | None = Field(default=None, description="set by the seeker: bytes")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        return None if v is None else container_path(v)

    @model_validator(mode="after")
    def _one_source(self) -> InputSpec:
        if (self.artifact_id is None) == (self.output_of is None):
            raise ValueError("an input names either artifact_id or output_of")
        if self.output_of is not None and self.unpack:
            raise ValueError("output_of is always unpacked: leave out unpack")
        return self


class TaskSpec(BaseModel):
    """What a user submits."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    image: str = Field(min_length=1, max_length=512)
    command: list[str] = Field(default_factory=list, max_length=1024)
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    policy: SelectionPolicy = Field(default_factory=lambda: SelectionPolicy())
    min_helpers: int = Field(
        default=0, ge=0, le=MAX_REPLICAS, description="wait until this many helpers can take it"
    )
    timeout: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    max_attempts: int = Field(default=1, ge=1, le=100)
    name: str | None = Field(default=None, max_length=256)
    constraints: Labels = Field(
        default_factory=dict, description="labels a helper must have, e.g. {'zone': 'a'}"
    )
    placement: Literal["spread", "binpack"] = "spread"
    pull: Literal["always", "if-missing", "never"] = "if-missing"
    capabilities: list[Literal[SAFE_CAPABILITIES]] = Field(
        default_factory=list, description="Linux capabilities to keep (all others dropped)"
    )
    mounts: list[Mount] = Field(default_factory=list, max_length=16)
    inputs: list[InputSpec] = Field(default_factory=list, max_length=MAX_INPUTS)
    after: list[Annotated[str, StringConstraints(pattern=TASK_ID)]] = Field(
        default_factory=list,
        max_length=MAX_AFTER,
        description="tasks (or arrays) that must succeed before this one runs",
    )

    @model_validator(mode="after")
    def _policy_fits(self) -> TaskSpec:
        p = self.policy
        if p.kind == "quorum":
            if p.quorum is None:
                p.quorum = self.replicas // 2 + 1
            if p.quorum > self.replicas:
                raise ValueError(f"policy.quorum ({p.quorum}) exceeds replicas ({self.replicas})")
            if p.max_replicas is None:
                p.max_replicas = min(MAX_REPLICAS, self.replicas + 2)
            if p.max_replicas < self.replicas:
                raise ValueError("policy.max_replicas must be at least replicas")
        if self.min_helpers > self.replicas:
            raise ValueError(f"min_helpers ({self.min_helpers}) exceeds replicas ({self.replicas})")
        return self

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if not IMAGE_RE.fullmatch(v):
            raise ValueError(f"{v!r} is not a valid image reference (e.g. 'busybox:1.36')")
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str]) -> list[str]:
        if sum(len(a) for a in v) > 128 * 1024:
            raise ValueError("command is longer than 128 KiB")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not ENV_NAME_RE.fullmatch(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
        if sum(len(k) + len(val) for k, val in v.items()) > 128 * 1024:
            raise ValueError("environment is larger than 128 KiB")
        return v


class GpuInfo(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    index: int = Field(ge=0, le=1024)
    name: str = Field(default="", max_length=256)
    uuid: str = Field(default="", max_length=256)
    memory_total: Bytes = 0
    memory_free: Bytes = 0
    utilization: float | None = None


class HelperResources(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    cpus: float = Field(default=0, ge=0, le=100_000)
    cpu_load: float | None = Field(default=None, ge=0, le=1_000_000)
    memory_total: Bytes = 0
    memory_available: Bytes = 0
    disk_free: Bytes = 0
    gpus: list[GpuInfo] = Field(default_factory=list)


class HelperPolicy(BaseModel):
    images: list[str] = Field(default_factory=list, description="allowed image patterns")
    mounts: list[str] = Field(default_factory=list, description="host paths that may be mounted")


class HelperRegistration(BaseModel):
    """What a helper sends when it registers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    helper_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    # a host name: it names folders too (seeker results --download)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    url: str = Field(pattern=r"^https?://\S+$", max_length=512)
    slots: int = Field(default=1, ge=1, le=1024)
    resources: HelperResources = Field(default_factory=HelperResources)
    labels: Labels = Field(default_factory=dict)
    version: str | None = Field(default=None, max_length=64)
    boot_id: str | None = Field(default=None, max_length=64)
    policy: HelperPolicy = Field(default_factory=lambda: HelperPolicy())
    running: list[str] = Field(default_factory=list, description="assignment keys it runs")


class AssignmentEvent(BaseModel):
    """What a helper reports about an assignment."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    helper_id: str = Field(min_length=1, max_length=128)
    attempt: int = Field(ge=1, le=INT64_MAX)
    state: AssignmentState
    status: str | None = Field(default=None, max_length=32)
    exit_code: Int64 | None = None
    output_digest: str | None = Field(default=None, max_length=80)
    error: str | None = Field(default=None, max_length=8192)


ArrayIndices = Annotated[
    int | Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}-[0-9]{1,9}$")],
    Field(
        description="how many tasks (indices 0 to N-1), or a range of indices 'A-B' "
        "(both included); at most 10,000 tasks",
        examples=[100, "0-99"],
    ),
]


class ArraySubmission(TaskSpec):
    """An array: one task per index, all of one spec."""

    array: ArrayIndices

    def spec(self) -> TaskSpec:
        """The spec every task of the array shares."""
        return TaskSpec.model_validate(self.model_dump(exclude={"array"}))
