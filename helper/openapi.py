"""What the helper's OpenAPI document says beyond its routes: the answers'
schemas (assignment entries, the status) as pydantic models, its title and
description. The routes declare themselves in helper/app.py."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from seeker.helper_models import HelperResources
from seeker.models import AssignmentState
from serving.operations import optional

ANSWER = ConfigDict(json_schema_serialization_defaults_required=True)


class Entry(BaseModel):
    """An assignment the helper runs."""

    task_id: str
    attempt: int = Field(ge=1)
    image: str
    state: Literal[AssignmentState.on_helper()]
    container: str = Field(description="the container's name")
    boot_id: str = Field(description="the helper process that runs it")
    accepted_at: datetime | None = Field(
        default=None, description="absent for a run taken over from an earlier helper process"
    )
    cancel_requested: bool = Field(default=False, description="present once it is being stopped")
    gpus: dict[str, float] | None = Field(
        default=None,
        description="the GPUs it holds (uuid, else index) and its share of each, as this helper "
        "counts them to refuse an assignment on a GPU its runs fill; absent without GPUs",
    )


class InputCacheStats(BaseModel):
    """What the input cache holds, and has saved since the helper started."""

    model_config = ANSWER

    hits: int = Field(ge=0, description="inputs a run found in the cache")
    misses: int = Field(ge=0, description="inputs fetched from the channel")
    bytes_fetched: int = Field(ge=0)
    evictions: int = Field(ge=0, description="inputs removed to stay under the cap")
    entries: int = Field(ge=0)
    bytes: int = Field(ge=0, description="bytes held")
    cap: int = Field(ge=0, description="--input-cache")


class Status(BaseModel):
    """What the helper is doing."""

    model_config = ConfigDict(
        json_schema_serialization_defaults_required=True,
        json_schema_extra=optional("input_cache"),
    )

    helper_id: str
    name: str
    url: str
    boot_id: str
    outbox: int = Field(ge=0, description="entries written to disk and not yet delivered")
    input_cache: InputCacheStats | None = Field(
        default=None, description="what the input cache holds and has saved"
    )
    resources: HelperResources
    slots: int = Field(ge=1)
    running: list[Entry]


TITLE = "Seeker helper"
DESCRIPTION = (
    "A helper runs the assignments the seeker pushes to it as containers, "
    "and reports what it runs. See docs/api.md."
)
