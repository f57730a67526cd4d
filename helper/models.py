"""What the seeker pushes to a helper."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AssignmentResources(BaseModel):
    cpus: float = Field(default=0, ge=0)
    memory: int = Field(default=0, ge=0)
    gpus: int = Field(default=0, ge=0)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(min_length=1, max_length=128)
    attempt: int = Field(ge=1)
    helper_id: str = Field(min_length=1, max_length=128)
    image: str = Field(min_length=1, max_length=512)
    command: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    resources: AssignmentResources = Field(default_factory=AssignmentResources)
    timeout: float | None = Field(default=None, gt=0)
    gpu_indices: list[int] = Field(default_factory=list, description="GPUs to pin")

    @property
    def key(self) -> str:
        return f"{self.task_id}.{self.attempt}"
