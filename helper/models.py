"""What the seeker pushes to a helper."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from helper.policy import SAFE_CAPABILITIES
from seeker.models import Mount
from serving.schema import INT64_MAX, Bytes


class AssignmentResources(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    cpus: float = Field(default=0, ge=0, le=1024)
    memory: Bytes = 0
    gpus: int | float = Field(default=0, ge=0, le=64, description="whole GPUs, or a share of one")


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
    receipt: str = Field(
        pattern=r"^rcpt1\.[0-9a-f]{64}$",
        description="the seeker's receipt for this attempt, which the channel asks for "
        "with its result and artifacts",
    )

    @property
    def key(self) -> str:
        return f"{self.task_id}.{self.attempt}"
