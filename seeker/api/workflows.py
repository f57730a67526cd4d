"""The seeker's routes for work that builds on work: inputs (passed on to
the channel), task arrays."""

from __future__ import annotations

from flask import Flask, request

from channel.artifact_api import UnsupportedMediaType
from channel.models import InputUpload
from seeker.control.inputs import Sized
from seeker.control.operations import Seeker
from seeker.models import ArraySubmission
from serving.errors import ApiProblem
from serving.flaskapp import json_model

UPLOAD_LIMIT = 2**62  # the channel enforces its own (--max-artifact-bytes)
OCTET_STREAM = "application/octet-stream"


class LengthRequired(ApiProblem):
    status = 411
    code = "length_required"


def add_workflow_routes(app: Flask, seeker: Seeker) -> None:
    @app.post("/api/v1/inputs")
    def upload_input():
        upload = InputUpload.model_validate({k: request.args.get(k) for k in ("name", "sha256")})
        if request.mimetype != OCTET_STREAM:
            raise UnsupportedMediaType(
                "expected the file's raw bytes as the body", f"send Content-Type: {OCTET_STREAM}"
            )
        if request.content_length is None:
            raise LengthRequired(
                "the upload's length is needed", "send Content-Length (not a chunked body)"
            )
        request.max_content_length = UPLOAD_LIMIT  # streamed on, not held here
        body = Sized(request.stream, request.content_length)
        stored, created = seeker.inputs.upload(upload.name, upload.sha256, body)
        return stored, 201 if created else 200

    @app.get("/api/v1/inputs/<artifact_id>")
    def describe_input(artifact_id: str):
        return seeker.inputs.describe(artifact_id)

    @app.post("/api/v1/arrays")
    def submit_array():
        submission = json_model(ArraySubmission)
        return seeker.submit_array(submission.spec(), submission.array), 201

    @app.get("/api/v1/arrays/<array_id>")
    def array_status(array_id: str):
        return seeker.workflows.array(array_id)

    @app.delete("/api/v1/arrays/<array_id>")
    def cancel_array(array_id: str):
        return seeker.workflows.cancel_array(array_id)
