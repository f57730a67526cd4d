"""The tasks' schemas and the states, shared by the API, the CLI and the client
(what helpers send is in seeker/helper_models.py)."""

from __future__ import annotations

import contextlib
import math
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from helper.images import MAX_REFERENCE
from helper.policy import SAFE_CAPABILITIES
from serving.schema import Bytes, StrEnum, parse_bytes

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

ImageReference = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REFERENCE)]


class TaskState(StrEnum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def final(cls) -> tuple[TaskState, ...]:
        """The states a task never leaves."""
        return (cls.SUCCEEDED, cls.FAILED, cls.CANCELLED)

    @classmethod
    def unfinished(cls) -> tuple[TaskState, ...]:
        """The states a task may still leave: a query of unfinished tasks
        names them (`$in`), so that an index over `state` bounds it by the
        unfinished alone, not the history of finished ones (`$nin` of the
        final states walks every task on SecantusDB)."""
        return tuple(s for s in cls if s not in cls.final())

    @classmethod
    def active(cls) -> tuple[TaskState, ...]:
        """The states of a task with a replica placed (or being placed)."""
        return (cls.DISPATCHED, cls.RUNNING)


class AssignmentState(StrEnum):
    PUSHING = "pushing"  # recorded, being sent to the helper
    ACCEPTED = "accepted"  # the helper took it
    FETCHING = "fetching"  # the helper is fetching the task's inputs
    PULLING = "pulling"  # the helper is pulling the image
    RUNNING = "running"  # the container started
    FINISHED = "finished"  # a result exists (any status)
    PUSH_FAILED = "push_failed"  # the helper could not be reached or refused
    LOST = "lost"  # its helper died, was purged or restarted without it

    @classmethod
    def live(cls) -> tuple[AssignmentState, ...]:
        """The states of an assignment that holds room on its helper and may
        still produce a result."""
        return (cls.PUSHING, cls.ACCEPTED, cls.FETCHING, cls.PULLING, cls.RUNNING)

    @classmethod
    def on_helper(cls) -> tuple[AssignmentState, ...]:
        """The states a helper reports of an assignment it holds."""
        return (cls.ACCEPTED, cls.FETCHING, cls.PULLING, cls.RUNNING)


class Placement(StrEnum):
    """Where work goes among the helpers that can take it."""

    SPREAD = "spread"  # to the emptiest
    BINPACK = "binpack"  # to the fullest that still fits


VERSION_PATTERN = r"^[0-9]{1,4}(\.[0-9]{1,4}){0,2}$"  # 12.4, 8.0, 535.104.05
Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    cpus: float = Field(default=0, ge=0, le=1024)
    memory: Bytes = Field(default=0, description="bytes, or a size such as '4g'")
    gpus: int | float = Field(
        default=0,
        ge=0,
        le=64,
        description="whole GPUs, or a share of one GPU below 1 (0.5, 0.25) that other "
        "tasks may share",
    )
    gpu_memory: Bytes = Field(
        default=0,
        description="bytes of free memory per GPU; with a share of a GPU, the memory it reserves",
    )
    gpu_model: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="part of the GPU's name or MIG profile, any case: 'H100', '3g.20gb'",
    )
    min_cuda: Version | None = Field(
        default=None, description="the CUDA version the driver must support at least: '12.4'"
    )
    min_compute_capability: Version | None = Field(
        default=None, description="the GPU's compute capability at least: '8.0'"
    )

    @field_validator("memory", "gpu_memory", mode="before")
    @classmethod
    def _sizes(cls, v):
        return parse_bytes(v)

    @field_validator("gpus", mode="before")
    @classmethod
    def _whole_or_share(cls, v):
        """2 and 2.0 are two GPUs (an int), 0.5 is half of one; 1.5 is neither."""
        number = v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
        if isinstance(v, str):
            with contextlib.suppress(ValueError):
                number = float(v)
        if number is None or not math.isfinite(number):
            raise ValueError(f"{v!r} is not a number of GPUs (e.g. 2) or a share of one (0.5)")
        if number == int(number):
            return int(number)
        if 0 < number < 1:
            return number
        raise ValueError(
            f"{v} is neither a whole number of GPUs nor a share of one GPU below 1 (e.g. 0.5)"
        )

    @model_validator(mode="after")
    def _gpu_filters_need_gpus(self) -> Resources:
        asked = [k for k in ("gpu_model", "min_cuda", "min_compute_capability") if getattr(self, k)]
        if asked and not self.gpus:
            verb = "needs" if len(asked) == 1 else "need"
            raise ValueError(f"{' and '.join(asked)} {verb} gpus (a number of GPUs, or a share)")
        return self


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
    placement: Placement = Placement.SPREAD
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
