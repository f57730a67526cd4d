"""The artifact routes of the channel's API: upload raw bytes, list,
download (an uploaded input too), and the check that lets a helper read
only the inputs of its own assignments."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from flask import Flask, Response, request

from channel.artifacts import ArtifactStore, too_large
from channel.inputs import InputStore, sources
from channel.models import ArtifactKey
from channel.openapi import NOT_GRANTED, Artifact, ArtifactList, ArtifactQuery, ArtifactUpload
from serving import grants, receipts
from serving.access import allow, principal
from serving.errors import ApiProblem, BadRequest, Forbidden, NotFound
from serving.inputs import int_arg
from serving.operations import INVALID, OCTET_STREAM, Media, operation
from serving.principals import USER
from serving.schema import INT64_MAX

DOWNLOAD = Media(
    OCTET_STREAM,
    {"type": "string", "format": "binary"},
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
)


class UnsupportedMediaType(ApiProblem):
    status = 415
    code = "unsupported_media_type"


def check_receipt(key: bytes, task_id: str, helper_id: str, attempt: int) -> None:
    """403 unless the caller's receipt is the seeker's for this very attempt."""
    if not receipts.valid(key, principal().subject or "", task_id, helper_id, attempt):
        raise Forbidden(
            "the receipt does not match this attempt",
            f"a receipt is good only for the task, helper and attempt the seeker assigned; "
            f"this one is not for task {task_id} attempt {attempt} on helper {helper_id}",
        )


def check_grant(key: bytes, found: dict | None, requested: list[str]) -> None:
    """403 unless a caller holding a grant (a helper) holds one for this
    input: for the file found, or for what was asked (a file not found is a
    404 only to whoever may know of it). Users pass."""
    who = principal()
    if not who.has(grants.GRANT):
        return
    if grants.covers(key, who.subject or "", sources(found) if found else requested):
        return
    holder = grants.holder_of(who.subject or "")
    raise Forbidden(
        "the grant does not cover this input",
        f"a grant is good only for the inputs the seeker gave the attempt it was made for "
        f"(task {holder.task_id} attempt {holder.attempt} on helper {holder.helper_id})",
    )


def add_artifact_routes(
    app: Flask, artifacts: ArtifactStore, inputs: InputStore, now, receipt_key: bytes
) -> None:
    @app.post("/api/v1/artifacts")
    @operation(
        {
            200: (Artifact, "stored before: the first copy (the body is not read)"),
            201: (Artifact, "stored"),
            403: "the receipt is not the seeker's for this task, helper and attempt",
            413: "larger than the channel's --max-artifact-bytes; nothing is stored",
            415: "the body is not application/octet-stream",
            422: (INVALID, "a missing or invalid query parameter"),
        },
        query=ArtifactUpload,
        raw_body=OCTET_STREAM,
        tag="artifacts",
    )
    @allow(receipts.RECEIPT)
    def upload_artifact():
        """Upload an artifact (raw bytes, streamed to the database)"""
        key = ArtifactKey.model_validate(
            {k: request.args.get(k) for k in ArtifactKey.model_fields if k in request.args}
        ).model_dump()
        check_receipt(receipt_key, key["task_id"], key["helper_id"], key["attempt"])
        if request.mimetype != OCTET_STREAM:
            raise UnsupportedMediaType(
                "expected the artifact's raw bytes as the body",
                f"send Content-Type: {OCTET_STREAM}",
            )
        existing = artifacts.find(key)
        if existing is not None:  # a retried upload: the bytes are not read again
            return existing, 200
        max_bytes = app.config["MAX_ARTIFACT_BYTES"]
        if (request.content_length or 0) > max_bytes:
            raise too_large(max_bytes)
        # JSON routes keep the app-wide MAX_CONTENT_LENGTH; this one streams.
        request.max_content_length = max_bytes
        doc, created = artifacts.put(key, request.stream, uploaded_at=now(), max_bytes=max_bytes)
        return doc, 201 if created else 200

    @app.get("/api/v1/artifacts")
    @operation(
        {
            200: (ArtifactList, "by helper, attempt and name; one page"),
            400: "task_id missing, attempt not an integer in range",
        },
        query=ArtifactQuery,
        tag="artifacts",
    )
    def list_artifacts():
        """A task's artifacts"""
        task_id = required_arg("task_id")
        helper_id = request.args.get("helper_id") or None
        attempt = int_arg("attempt", None, 1, INT64_MAX)
        return {"artifacts": artifacts.for_task(task_id, helper_id, attempt), "next": None}

    @app.get("/api/v1/artifacts/<artifact_id>")
    @operation(
        {200: (DOWNLOAD, "the bytes, streamed"), 403: NOT_GRANTED, 404: "no such artifact"},
        tag="artifacts",
    )
    @allow(USER, grants.GRANT)
    def download_artifact(artifact_id: str):
        """Download an artifact or an uploaded input"""
        check_grant(receipt_key, inputs.describe(artifact_id), [artifact_id])
        found = inputs.download(artifact_id)
        if found is None:
            raise NotFound("no such artifact", artifact_id)
        doc, blocks = found
        resp = Response(blocks, mimetype=OCTET_STREAM, direct_passthrough=True)
        resp.content_length = doc["size"]
        resp.headers["Content-Disposition"] = attachment(doc["name"])
        resp.headers["X-Content-Sha256"] = doc["sha256"]
        return resp


def required_arg(name: str) -> str:
    value = request.args.get(name)
    if not value:
        raise BadRequest(f"query parameter '{name}' is required", f"e.g. ?{name}=<id>")
    return value


def attachment(name: str) -> str:
    """A Content-Disposition for a download saved under the name's last
    segment (RFC 6266; a non-ASCII name also as RFC 5987 `filename*`)."""
    filename = name.rsplit("/", 1)[-1]
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    ascii_name = ascii_name.replace("\\", "_").replace('"', "_") or "artifact"
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value
