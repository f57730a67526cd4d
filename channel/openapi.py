"""What the channel's OpenAPI document says beyond its routes: the answers'
schemas (the result document, artifacts) and the query parameters as
pydantic models, its title and description. The routes declare themselves
in channel/app.py and channel/artifact_api.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from channel.models import ARTIFACT_NAME_MAX, ResultFields, ResultStatus
from serving.operations import optional
from serving.schema import INT64_MAX

ANSWER = ConfigDict(json_schema_serialization_defaults_required=True)

Id = Annotated[str, Field(min_length=1, max_length=128)]
Attempt = Annotated[int, Field(ge=1, le=INT64_MAX)]


class ArtifactSummary(BaseModel):
    """An artifact as a result lists it."""

    model_config = ANSWER

    artifact_id: str = Field(description="24 hex digits")
    name: str
    size: int = Field(ge=0, description="bytes")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Artifact(ArtifactSummary):
    """A file an attempt produced."""

    task_id: str
    helper_id: str
    attempt: int = Field(ge=1)
    uploaded_at: datetime


class Result(ResultFields):
    """The result document: the fields posted, and what the channel adds."""

    model_config = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)

    result_id: str = Field(description="<task_id>.<attempt>")
    received_at: datetime = Field(description="channel clock")
    artifacts: list[ArtifactSummary] = Field(description="the artifacts of that attempt")


class Input(BaseModel):
    """A file a task can read: an uploaded input, or a result's artifact."""

    model_config = ConfigDict(
        json_schema_serialization_defaults_required=True,
        json_schema_extra=optional("task_id", "helper_id", "attempt"),
    )

    artifact_id: str = Field(
        description="`sha256:<hex>` for an uploaded input, 24 hex digits for a result's artifact"
    )
    name: str
    size: int = Field(ge=0, description="bytes")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    uploaded_at: datetime
    task_id: str | None = Field(default=None, description="a result's artifact: its attempt")
    helper_id: str | None = Field(default=None, description="a result's artifact: its attempt")
    attempt: int | None = Field(default=None, ge=1, description="a result's artifact: its attempt")


class ResultPage(BaseModel):
    model_config = ANSWER

    results: list[Result]
    next: str | None = Field(description="pass as `after` for the next page; null on the last")


class ArtifactList(BaseModel):
    model_config = ANSWER

    artifacts: list[Artifact]
    next: None = Field(description="always null: one page")


class ResultQuery(BaseModel):
    """The query of GET /api/v1/results (read by the view itself)."""

    task_id: str = Field(min_length=1)
    status: ResultStatus = Field(default=None, description="only these")
    helper_id: str = Field(default=None, min_length=1, description="only this helper's results")
    limit: int = Field(default=100, ge=1, le=500)
    order: Literal["oldest", "newest"] = None
    after: str = Field(
        default=None,
        pattern="^([0-9a-fA-F]{24})?$",
        description="the `next` of the previous page (empty: the first page)",
    )


NAME_RULES = "a relative path: no '..', '.' or empty segments, no backslashes or control characters"
NOT_GRANTED = "a grant for another input, or another attempt's (or a receipt)"


class ArtifactUpload(BaseModel):
    """The query of POST /api/v1/artifacts: the artifact's key (read by the
    view itself, as channel.models.ArtifactKey)."""

    task_id: Id
    helper_id: Id
    attempt: Attempt
    name: str = Field(
        min_length=1,
        max_length=ARTIFACT_NAME_MAX,
        json_schema_extra={"pattern": r"^(?!/)[^\\\x00-\x1f\x7f]+$"},  # checked by ArtifactKey
        description=NAME_RULES,
    )


class ArtifactQuery(BaseModel):
    """The query of GET /api/v1/artifacts (read by the view itself)."""

    task_id: str = Field(min_length=1)
    helper_id: str = Field(default=None, description="only this helper's")
    attempt: Attempt = Field(default=None, description="only this attempt's")


class InputUploadQuery(BaseModel):
    """The query of POST /api/v1/inputs (read by the view itself, as
    channel.models.InputUpload)."""

    name: str = Field(
        min_length=1,
        max_length=ARTIFACT_NAME_MAX,
        json_schema_extra={"pattern": r"^(?!/)[^\\\x00-\x1f\x7f]+$"},  # checked by InputUpload
        description=NAME_RULES,
    )
    sha256: str = Field(
        pattern="^[0-9a-f]{64}$",
        description="of the bytes sent (checked); the input's id is sha256:<hex>",
    )


class OutputQuery(BaseModel):
    """The query of GET /api/v1/inputs (read by the view itself, as
    channel.models.OutputKey)."""

    task_id: Id
    helper_id: Id
    attempt: Attempt
    name: str = Field(min_length=1)


TITLE = "Seeker channel"
DESCRIPTION = (
    "The channel stores the results helpers post and the artifacts (files) of "
    "each attempt, and answers queries by task id. See docs/api.md."
)
