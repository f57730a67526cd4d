"""What the seeker pushes to a helper."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from channel.models import OutputKey
from helper.policy import SAFE_CAPABILITIES
from seeker.models import Mount, container_path
from serving.schema import INT64_MAX, Bytes


class AssignmentResources(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    cpus: float = Field(default=0, ge=0, le=1024)
    memory: Bytes = 0
    gpus: int | float = Field(default=0, ge=0, le=64, description="whole GPUs, or a share of one")


class AssignmentInput(BaseModel):
    """A file the helper fetches from the channel before the container starts
    and mounts read-only at `path`: an artifact by id, or the output (the
    /output directory) of the task this one ran after."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    path: str = Field(max_length=1024, description="where the container sees it")
    artifact_id: str | None = Field(default=None, max_length=128)
    output: OutputKey | None = Field(
        default=None, description="the output.tar of this attempt, mounted as a directory"
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="when known: a copy in the helper's cache is used without asking",
    )
    unpack: bool = Field(default=False, description="a tar archive: mount its contents")
    grant: str = Field(
        pattern=r"^grant1~[A-Za-z0-9_.~-]{1,300}$",
        description="the seeker's grant to read this input, for this attempt",
    )

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return container_path(v)

    @model_validator(mode="after")
    def _one_source(self) -> AssignmentInput:
        if (self.artifact_id is None) == (self.output is None):
            raise ValueError("give either artifact_id or output")
        return self

    @property
    def source(self) -> str:
        """What the input is, for a person: its id, or whose output."""
        if self.output is not None:
            o = self.output
            return f"output of task {o.task_id} (attempt {o.attempt} on helper {o.helper_id})"
        return self.artifact_id or ""


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    task_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    attempt: int = Field(ge=1, le=INT64_MAX)
    helper_id: str = Field(min_length=1, max_length=128)
    image: str = Field(min_length=1, max_length=512)
    command: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    resources: AssignmentResources = Field(default_factory=AssignmentResources)
    timeout: float | None = Field(default=None, gt=0)
    gpu_indices: list[Annotated[int, Field(ge=0, le=1024)]] = Field(
        default_factory=list, max_length=64, description="GPUs to pin"
    )
    gpu_uuids: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list,
        max_length=64,
        description="the devices to pin, by uuid (a MIG instance's own): Docker is asked for "
        "these when given, else for gpu_indices",
    )
    pull: Literal["always", "if-missing", "never"] = "if-missing"
    capabilities: list[Literal[SAFE_CAPABILITIES]] = Field(default_factory=list)
    mounts: list[Mount] = Field(default_factory=list, max_length=16)
    inputs: list[AssignmentInput] = Field(default_factory=list, max_length=64)
    array_id: str | None = Field(default=None, max_length=64)
    array_index: int | None = Field(default=None, ge=0, le=INT64_MAX)
    receipt: str = Field(
        pattern=r"^rcpt1\.[0-9a-f]{64}$",
        description="the seeker's receipt for this attempt, which the channel asks for "
        "with its result and artifacts",
    )

    @property
    def key(self) -> str:
        return f"{self.task_id}.{self.attempt}"
