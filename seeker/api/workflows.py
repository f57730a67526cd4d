"""The seeker's routes for work that builds on work: inputs (passed on to
the channel), task arrays."""

from __future__ import annotations

from flask import Flask, request

from channel.artifact_api import UnsupportedMediaType
from channel.models import InputUpload
from channel.openapi import Input
from seeker.api.openapi import (
    NO_ARRAY,
    NO_CHANNEL,
    ArrayCreated,
    ArrayOfTasks,
    ArrayStatus,
    ArrayWaitQuery,
    InputUploadQuery,
)
from seeker.control.inputs import Sized
from seeker.control.operations import Seeker
from seeker.store.events import MAX_EVENT_WAIT, TASK_WAITS
from serving.errors import ApiProblem
from serving.inputs import int_arg
from serving.operations import INVALID, OCTET_STREAM, operation
from serving.parking import park_on_watched

UPLOAD_LIMIT = 2**62  # the channel enforces its own (--max-artifact-bytes)
ARRAY_ID = {"array_id": "arr-<12 hex digits>"}


class LengthRequired(ApiProblem):
    status = 411
    code = "length_required"


def add_workflow_routes(app: Flask, seeker: Seeker) -> None:
    add_input_routes(app, seeker)

    @app.post("/api/v1/arrays")
    @operation(
        {201: (ArrayCreated, "the array and its tasks, pending")}, body=ArrayOfTasks, tag="tasks"
    )
    def submit_array(body: ArrayOfTasks):
        """Submit an array: one task per index, all of one spec"""
        return seeker.submit_array(body.spec(), body.array), 201

    @app.get("/api/v1/arrays/<array_id>")
    @operation(
        {
            200: (
                ArrayStatus,
                "the counts (with `wait`: once every task ended, or when the time is up)",
            ),
            400: "wait out of range",
            404: NO_ARRAY,
        },
        params=ARRAY_ID,
        query=ArrayWaitQuery,
        tag="tasks",
    )
    def array_status(array_id: str):
        """An array's tasks counted by state"""
        wait = int_arg("wait", 0, 0, MAX_EVENT_WAIT)
        workflows = seeker.workflows

        # with `wait` and a task left, the request is parked (no thread)
        # under the end of the array's last unfinished task; woken, it
        # parks under the next one, or counts
        def watch(before: str | None) -> str | None:
            last = before.removeprefix(TASK_WAITS) if before else None
            task_id = workflows.array_waits_on(array_id, last)
            return TASK_WAITS + task_id if task_id else None

        def still(key: str) -> bool:
            return workflows.unfinished(key.removeprefix(TASK_WAITS))

        if wait and park_on_watched(request.environ, watch, still, lambda: wait):
            return ""
        return workflows.array(array_id)

    @app.delete("/api/v1/arrays/<array_id>")
    @operation(
        {
            200: (ArrayStatus, "the counts after, and how many were cancelled"),
            404: NO_ARRAY,
        },
        params=ARRAY_ID,
        tag="tasks",
    )
    def cancel_array(array_id: str):
        """Cancel every task of an array that has not ended"""
        return seeker.workflows.cancel_array(array_id)


def add_input_routes(app: Flask, seeker: Seeker) -> None:
    @app.post("/api/v1/inputs")
    @operation(
        {
            200: (Input, "these bytes are stored already (the body is not read)"),
            201: (Input, "stored"),
            400: "the bytes' sha256 is not the one given; nothing is stored",
            411: "no Content-Length (a chunked body)",
            413: "larger than the channel's --max-artifact-bytes; nothing is stored",
            415: "the body is not application/octet-stream",
            422: (INVALID, "a missing or invalid query parameter"),
            503: NO_CHANNEL,
        },
        query=InputUploadQuery,
        raw_body=OCTET_STREAM,
        tag="inputs",
    )
    def upload_input():
        """Upload a file for tasks to read (passed on to the channel, stored once per content)"""
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
    @operation(
        {200: (Input, "the file"), 404: "no such input", 503: NO_CHANNEL},
        params={"artifact_id": "`sha256:<hex>` or an artifact's 24 hex digits"},
        tag="inputs",
    )
    def describe_input(artifact_id: str):
        """Describe an uploaded input or a result's artifact (from the channel)"""
        return seeker.inputs.describe(artifact_id)
