"""The helper's OpenAPI document: its routes, and the answers' schemas
(assignment entries, the status) described as pydantic models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from helper.models import Assignment
from seeker.models import HelperResources
from serving.openapi import (
    Param,
    Reply,
    Route,
    common_routes,
    error,
    optional,
    service_document,
)

ANSWER = ConfigDict(json_schema_serialization_defaults_required=True)


class Entry(BaseModel):
    """An assignment the helper runs."""

    task_id: str
    attempt: int = Field(ge=1)
    image: str
    state: Literal["accepted", "fetching", "pulling", "running"]
    container: str = Field(description="the container's name")
    boot_id: str = Field(description="the helper process that runs it")
    accepted_at: datetime | None = Field(
        default=None, description="absent for a run taken over from an earlier helper process"
    )
    cancel_requested: bool = Field(default=False, description="present once it is being stopped")


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


def routes() -> list[Route]:
    return [
        *common_routes("helper"),
        Route(
            "POST",
            "/api/v1/assignments",
            "Run an assignment (sent by the seeker)",
            {
                202: Reply("accepted (also for a run already under way)", Entry),
                403: error(
                    "refused by this helper's policy (--allow-image, --allow-mount), or "
                    "the caller is not this helper's seeker"
                ),
                409: error("the assignment is for another helper"),
                429: error("every slot is in use"),
            },
            body=Assignment,
            tag="assignments",
            roles=("seeker",),
        ),
        Route(
            "DELETE",
            "/api/v1/assignments/{key}",
            "Stop an assignment (answers at once, stops in the background)",
            {
                200: Reply("the entry, with cancel_requested", Entry),
                404: error("no such running assignment"),
            },
            params=(Param("key", {"type": "string"}, "path", description="<task_id>.<attempt>"),),
            tag="assignments",
            roles=("seeker",),
        ),
        Route(
            "GET",
            "/api/v1/status",
            "What the helper is doing",
            {200: Reply("its resources and running assignments", Status)},
            tag="status",
            roles=("seeker", "user"),
        ),
    ]


DESCRIPTION = (
    "A helper runs the assignments the seeker pushes to it as containers, "
    "and reports what it runs. See docs/api.md."
)


document = service_document("Seeker helper", DESCRIPTION, routes)
