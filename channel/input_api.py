"""The input routes of the channel's API: upload a file for tasks to read
(stored once per content) and describe an input (the download is
artifacts': channel/artifact_api.py)."""

from __future__ import annotations

from flask import Flask, request

from channel.artifact_api import UnsupportedMediaType, check_grant
from channel.artifacts import too_large
from channel.inputs import InputStore, input_id
from channel.models import InputUpload, OutputKey
from channel.openapi import NOT_GRANTED, Input, InputUploadQuery, OutputQuery
from serving import grants
from serving.access import allow
from serving.errors import NotFound
from serving.operations import INVALID, OCTET_STREAM, operation
from serving.principals import USER


def query_model(model):
    return model.model_validate({k: request.args.get(k) for k in model.model_fields})


def add_input_routes(app: Flask, inputs: InputStore, now, receipt_key: bytes) -> None:
    @app.post("/api/v1/inputs")
    @operation(
        {
            200: (Input, "these bytes are stored already (the body is not read)"),
            201: (Input, "stored"),
            400: "the bytes' sha256 is not the one given; nothing is stored",
            413: "larger than the channel's --max-artifact-bytes; nothing is stored",
            415: "the body is not application/octet-stream",
            422: (INVALID, "a missing or invalid query parameter"),
        },
        query=InputUploadQuery,
        raw_body=OCTET_STREAM,
        tag="inputs",
    )
    def upload_input():
        """Upload a file for tasks to read (stored once per content)"""
        upload = query_model(InputUpload)
        if request.mimetype != OCTET_STREAM:
            raise UnsupportedMediaType(
                "expected the file's raw bytes as the body", f"send Content-Type: {OCTET_STREAM}"
            )
        existing = inputs.describe(input_id(upload.sha256))
        if existing is not None:  # the same bytes are stored: the body is not read
            return existing, 200
        max_bytes = app.config["MAX_ARTIFACT_BYTES"]
        if (request.content_length or 0) > max_bytes:
            raise too_large(max_bytes)
        request.max_content_length = max_bytes
        doc, created = inputs.put(
            upload.name, upload.sha256, request.stream, uploaded_at=now(), max_bytes=max_bytes
        )
        return doc, 201 if created else 200

    @app.get("/api/v1/inputs/<artifact_id>")
    @operation(
        {200: (Input, "the file"), 403: NOT_GRANTED, 404: "no such file"},
        tag="inputs",
        params={"artifact_id": "`sha256:<hex>` or an artifact's 24 hex digits"},
    )
    @allow(USER, grants.GRANT)
    def describe_input(artifact_id: str):
        """Describe an uploaded input or a result's artifact"""
        found = inputs.describe(artifact_id)
        check_grant(receipt_key, found, [artifact_id])
        if found is None:
            raise NotFound("no such input", f"no uploaded file or artifact has id {artifact_id}")
        return found

    @app.get("/api/v1/inputs")
    @operation(
        {
            200: (Input, "the artifact"),
            403: NOT_GRANTED,
            404: "not stored (yet)",
            422: (INVALID, "a missing or invalid query parameter"),
        },
        query=OutputQuery,
        tag="inputs",
    )
    @allow(USER, grants.GRANT)
    def describe_output():
        """Find a result's artifact by the attempt that made it and its name"""
        key = query_model(OutputKey)
        found = inputs.describe_output(key.task_id, key.helper_id, key.attempt, key.name)
        wanted = grants.output_source(key.task_id, key.helper_id, key.attempt, key.name)
        check_grant(receipt_key, found, [wanted])
        if found is None:
            raise NotFound(
                "no such artifact (yet)",
                f"attempt {key.attempt} of task {key.task_id} on helper {key.helper_id} has "
                f"no artifact named {key.name!r} in the channel",
            )
        return found
