"""The channel's OpenAPI document: its routes, and the answers' schemas
(the result document, artifacts), described as pydantic models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from channel.models import ARTIFACT_NAME_MAX, ResultIn, ResultStatus
from serving.openapi import (
    OCTET_STREAM,
    Param,
    Reply,
    Route,
    common_routes,
    error,
    optional,
    service_document,
)
from serving.schema import INT64_MAX

ANSWER = ConfigDict(json_schema_serialization_defaults_required=True)

ID = {"type": "string", "minLength": 1, "maxLength": 128}
NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": ARTIFACT_NAME_MAX,
    "pattern": r"^(?!/)[^\\\x00-\x1f\x7f]+$",
}
NAME_RULES = "a relative path: no '..', '.' or empty segments, no backslashes or control characters"
NOT_GRANTED = "a grant for another input, or another attempt's (or a receipt)"
ATTEMPT = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}
STATUSES = [s.value for s in ResultStatus]


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


class Result(ResultIn):
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


def routes() -> list[Route]:
    task_id = Param("task_id", {"type": "string", "minLength": 1}, required=True)
    return [
        *common_routes("channel"),
        Route(
            "POST",
            "/api/v1/results",
            "Store a result",
            {
                200: Reply("stored before: the first copy (a retry stores nothing)", Result),
                201: Reply("stored", Result),
                403: error(
                    "the receipt is not the seeker's for this task, helper and attempt "
                    "(or a token was sent instead of a receipt)"
                ),
                409: error("another helper already sent a result for that attempt"),
            },
            body=ResultIn,
            tag="results",
            roles=("receipt",),
        ),
        Route(
            "GET",
            "/api/v1/results",
            "A task's results, a page at a time",
            {
                200: Reply("one page, by arrival", ResultPage),
                400: error("a bad query parameter"),
            },
            params=(
                task_id,
                Param("status", {"type": "string", "enum": STATUSES}, description="only these"),
                Param(
                    "helper_id",
                    {"type": "string", "minLength": 1},
                    description="only this helper's results",
                ),
                Param("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}),
                Param("order", {"type": "string", "enum": ["oldest", "newest"]}),
                Param(
                    "after",
                    {"type": "string", "pattern": "^([0-9a-fA-F]{24})?$"},
                    description="the `next` of the previous page (empty: the first page)",
                ),
            ),
            tag="results",
        ),
        Route(
            "GET",
            "/api/v1/results/{result_id}",
            "One result",
            {200: Reply("the result", Result), 404: error("no such result")},
            params=(
                Param("result_id", {"type": "string"}, "path", description="<task_id>.<attempt>"),
            ),
            tag="results",
        ),
        Route(
            "POST",
            "/api/v1/artifacts",
            "Upload an artifact (raw bytes, streamed to the database)",
            {
                200: Reply("stored before: the first copy (the body is not read)", Artifact),
                201: Reply("stored", Artifact),
                403: error("the receipt is not the seeker's for this task, helper and attempt"),
                413: error("larger than the channel's --max-artifact-bytes; nothing is stored"),
                415: error("the body is not application/octet-stream"),
                422: Reply(
                    "a missing or invalid query parameter",
                    {"$ref": "#/components/schemas/Invalid"},
                ),
            },
            params=(
                Param("task_id", ID, required=True),
                Param("helper_id", ID, required=True),
                Param("attempt", ATTEMPT, required=True),
                Param(
                    "name",
                    {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": ARTIFACT_NAME_MAX,
                        "pattern": r"^(?!/)[^\\\x00-\x1f\x7f]+$",
                    },
                    required=True,
                    description="a relative path: no '..', '.' or empty segments, "
                    "no backslashes or control characters",
                ),
            ),
            raw_body=OCTET_STREAM,
            tag="artifacts",
            roles=("receipt",),
        ),
        Route(
            "GET",
            "/api/v1/artifacts",
            "A task's artifacts",
            {
                200: Reply("by helper, attempt and name; one page", ArtifactList),
                400: error("task_id missing, attempt not an integer in range"),
            },
            params=(
                task_id,
                Param("helper_id", {"type": "string"}, description="only this helper's"),
                Param("attempt", ATTEMPT, description="only this attempt's"),
            ),
            tag="artifacts",
        ),
        Route(
            "GET",
            "/api/v1/artifacts/{artifact_id}",
            "Download an artifact or an uploaded input",
            {
                200: Reply(
                    "the bytes, streamed",
                    {"type": "string", "format": "binary"},
                    OCTET_STREAM,
                    headers={
                        "Content-Disposition": {
                            "description": 'attachment; filename="<last segment of the name>"',
                            "schema": {"type": "string"},
                        },
                        "X-Content-Sha256": {
                            "description": "the sha256 of the bytes (hex)",
                            "schema": {"type": "string"},
                        },
                    },
                ),
                403: error(NOT_GRANTED),
                404: error("no such artifact"),
            },
            params=(Param("artifact_id", {"type": "string"}, "path"),),
            tag="artifacts",
            roles=("user", "grant"),
        ),
        Route(
            "POST",
            "/api/v1/inputs",
            "Upload a file for tasks to read (stored once per content)",
            {
                200: Reply("these bytes are stored already (the body is not read)", Input),
                201: Reply("stored", Input),
                400: error("the bytes' sha256 is not the one given; nothing is stored"),
                413: error("larger than the channel's --max-artifact-bytes; nothing is stored"),
                415: error("the body is not application/octet-stream"),
                422: Reply(
                    "a missing or invalid query parameter",
                    {"$ref": "#/components/schemas/Invalid"},
                ),
            },
            params=(
                Param("name", NAME, required=True, description=NAME_RULES),
                Param(
                    "sha256",
                    {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    required=True,
                    description="of the bytes sent (checked); the input's id is sha256:<hex>",
                ),
            ),
            raw_body=OCTET_STREAM,
            tag="inputs",
        ),
        Route(
            "GET",
            "/api/v1/inputs/{artifact_id}",
            "Describe an uploaded input or a result's artifact",
            {200: Reply("the file", Input), 403: error(NOT_GRANTED), 404: error("no such file")},
            params=(Param("artifact_id", {"type": "string"}, "path"),),
            tag="inputs",
            roles=("user", "grant"),
        ),
        Route(
            "GET",
            "/api/v1/inputs",
            "Find a result's artifact by the attempt that made it and its name",
            {
                200: Reply("the artifact", Input),
                403: error(NOT_GRANTED),
                404: error("not stored (yet)"),
                422: Reply(
                    "a missing or invalid query parameter",
                    {"$ref": "#/components/schemas/Invalid"},
                ),
            },
            params=(
                Param("task_id", ID, required=True),
                Param("helper_id", ID, required=True),
                Param("attempt", ATTEMPT, required=True),
                Param("name", {"type": "string", "minLength": 1}, required=True),
            ),
            tag="inputs",
            roles=("user", "grant"),
        ),
    ]


DESCRIPTION = (
    "The channel stores the results helpers post and the artifacts (files) of "
    "each attempt, and answers queries by task id. See docs/api.md."
)


document = service_document("Seeker channel", DESCRIPTION, routes)
