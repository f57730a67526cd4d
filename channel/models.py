"""The result document: what a helper posts and what the channel answers."""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.schema import INT64_MAX, StrEnum

MAX_LOG_BYTES = 16 * 1024 * 1024


class ResultStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    ERROR = "error"
    CANCELLED = "cancelled"


class ResultFields(BaseModel):
    """What a result document holds as its helper posted it."""

    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(min_length=1, max_length=128)
    helper_id: str = Field(min_length=1, max_length=128)
    helper_name: str | None = Field(default=None, max_length=256)
    attempt: int = Field(ge=1, le=INT64_MAX)
    image: str = Field(min_length=1, max_length=512)
    status: ResultStatus
    exit_code: int | None = Field(default=None, ge=-INT64_MAX - 1, le=INT64_MAX)
    error: str | None = Field(default=None, max_length=8192)
    stdout: str = Field(default="", max_length=MAX_LOG_BYTES)
    stderr: str = Field(default="", max_length=MAX_LOG_BYTES)
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    output_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    started_at: datetime | None = None
    finished_at: datetime
    sent_at: datetime


class ResultIn(ResultFields):
    """A result as a helper posts it; the channel adds `result_id`,
    `received_at` and the attempt's `artifacts`."""

    artifact_count: int | None = Field(
        default=None,
        ge=0,
        le=INT64_MAX,
        description="how many artifacts of this attempt the helper sent before this "
        "result (it sends them first): with 0 the answer's `artifacts` is empty without "
        "a look; not stored",
    )


def output_digest(stdout: bytes) -> str:
    return "sha256:" + hashlib.sha256(stdout).hexdigest()


ARTIFACT_NAME_MAX = 255


class ArtifactKey(BaseModel):
    """What names an artifact: the attempt that made it and a relative path.

    Posting the same key twice stores the artifact once."""

    task_id: str = Field(min_length=1, max_length=128)
    helper_id: str = Field(min_length=1, max_length=128)
    attempt: int = Field(ge=1, le=INT64_MAX)
    name: str = Field(min_length=1, max_length=ARTIFACT_NAME_MAX)

    @field_validator("name")
    @classmethod
    def _relative_path(cls, name: str) -> str:
        return relative_path(name)


def relative_path(name: str) -> str:
    """A name that is a relative path: no leading '/', no '..', '.' or empty
    segments, no backslashes or control characters."""
    if name.startswith("/"):
        raise ValueError("must be a relative path, not an absolute one")
    if "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError("must not contain backslashes or control characters")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError("must not contain '..', '.' or empty path segments")
    return name


class InputUpload(BaseModel):
    """What names an uploaded input: a file name and the sha256 of its bytes
    (the channel checks it; the input's id is `sha256:<hex>`)."""

    name: str = Field(min_length=1, max_length=ARTIFACT_NAME_MAX)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("name")
    @classmethod
    def _relative_path(cls, name: str) -> str:
        return relative_path(name)


class OutputKey(BaseModel):
    """A result's artifact by the attempt that made it and its name."""

    task_id: str = Field(min_length=1, max_length=128)
    helper_id: str = Field(min_length=1, max_length=128)
    attempt: int = Field(ge=1, le=INT64_MAX)
    name: str = Field(min_length=1, max_length=ARTIFACT_NAME_MAX)
