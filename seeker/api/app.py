"""The seeker's REST API: tasks, helpers and the events helpers report."""

from __future__ import annotations

from flask import Flask, Response, request, stream_with_context

from seeker.api.dashboard import register_dashboard
from seeker.api.metrics import SeekerCollector, SeekerMetrics
from seeker.api.openapi import document
from seeker.api.workflows import add_workflow_routes
from seeker.control.credentials import HELPER, JOIN
from seeker.control.operations import Seeker
from seeker.models import AssignmentEvent, HelperRegistration, TaskSpec, TaskState
from serving.auth import Authenticator, allow, principal
from serving.errors import BadRequest
from serving.flaskapp import base_app, int_arg, json_model
from serving.metrics import serve_metrics
from serving.openapi import serve_openapi

STATES = {s.value for s in TaskState}


def create_app(
    config: dict | None = None,
    *,
    seeker: Seeker,
    token: str,
    join_token: str | None = None,
    metrics: SeekerMetrics | None = None,
) -> Flask:
    """`token`: the user token (tasks, helpers, results, events).
    `join_token` (default: the user token): registering a helper, which
    returns the helper's own credential, with which it reports."""
    auth = Authenticator({"user": token, JOIN: join_token or token}, (seeker.credentials.verify,))
    app = base_app(__name__, "seeker", auth, config)
    app.extensions["seeker"] = seeker
    serve_metrics(app, SeekerCollector.of(seeker), metrics or SeekerMetrics())
    register_dashboard(app)
    serve_openapi(app, document())
    add_workflow_routes(app, seeker)  # inputs and arrays

    @app.post("/api/v1/tasks")
    def submit():
        spec = json_model(TaskSpec)
        return seeker.submit(spec), 201

    @app.get("/api/v1/tasks")
    def list_tasks():
        state = request.args.get("state")
        if state is not None and state not in STATES:
            raise BadRequest(f"unknown state {state!r}", f"one of: {', '.join(sorted(STATES))}")
        limit = int_arg("limit", 50, 1, 500)
        array_id = request.args.get("array_id") or None
        try:
            found, cursor = seeker.list_tasks(
                state, limit, request.args.get("after") or None, array_id
            )
        except ValueError:
            raise BadRequest(
                "query parameter 'after' is not a valid cursor",
                "pass the 'next' value of the previous page",
            ) from None
        return {"tasks": found, "next": cursor}

    @app.get("/api/v1/tasks/<task_id>")
    def get_task(task_id: str):
        return seeker.task(task_id)

    @app.delete("/api/v1/tasks/<task_id>")
    def cancel_task(task_id: str):
        return seeker.cancel(task_id)

    @app.get("/api/v1/tasks/<task_id>/results")
    def task_results(task_id: str):
        return seeker.results(task_id)

    @app.get("/api/v1/events")
    def events():
        after = int_arg("after", 0, 0, 2**62)
        limit = int_arg("limit", 100, 1, 1000)
        found = seeker.events.since(after, limit) if seeker.events else []
        return {"events": found, "next": found[-1]["seq"] if found else None}

    @app.get("/api/v1/artifacts/<artifact_id>")
    def artifact(artifact_id: str):
        upstream = seeker.artifact(artifact_id)
        headers = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() in ("content-type", "content-length", "content-disposition")
        }
        body = stream_with_context(upstream.iter_content(1024 * 1024))
        return Response(body, status=200, headers=headers, direct_passthrough=True)

    @app.post("/api/v1/tasks/<task_id>/events")
    @allow(HELPER)
    def assignment_event(task_id: str):
        event = json_model(AssignmentEvent)
        return seeker.assignment_event(task_id, event, principal())

    @app.post("/api/v1/helpers")
    @allow(JOIN, HELPER)
    def register_helper():
        reg = json_model(HelperRegistration)
        return seeker.register(reg, principal()), 200

    @app.get("/api/v1/helpers")
    def list_helpers():
        return {"helpers": seeker.helper_list(), "next": None}

    @app.delete("/api/v1/helpers/<helper_id>")
    def remove_helper(helper_id: str):
        seeker.remove_helper(helper_id)
        return {"removed": helper_id}

    return app
