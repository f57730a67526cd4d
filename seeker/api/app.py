"""The seeker's REST API: tasks, helpers and the events helpers report."""

from __future__ import annotations

from flask import Flask, Response, request, stream_with_context

from seeker.api.dashboard import register_dashboard
from seeker.api.helper_routes import add_helper_routes
from seeker.api.metrics import SeekerCollector, SeekerMetrics
from seeker.api.newest_event import NewestEvent
from seeker.api.openapi import (
    DESCRIPTION,
    NO_CHANNEL,
    NO_TASK,
    TASK_ID,
    TITLE,
    EventPage,
    EventQuery,
    TaskDetail,
    TaskList,
    TaskQuery,
    TaskResults,
    TaskSubmission,
    TaskWaitQuery,
)
from seeker.api.workflows import add_workflow_routes
from seeker.control.credentials import JOIN
from seeker.control.operations import Seeker
from seeker.models import TaskSpec, TaskState
from seeker.store.events import EVENT_WAITS, MAX_EVENT_WAIT, TASK_WAITS
from serving.errors import BadRequest
from serving.flaskapp import base_app, serve_metrics
from serving.inputs import int_arg
from serving.openapi import Document
from serving.operations import OCTET_STREAM, Media, operation
from serving.parking import PARK, answer_or_park
from serving.principals import Authenticator

STATES = {s.value for s in TaskState}
FINAL = {s.value for s in TaskState.final()}
NO_EVENTS = b'{"events": [], "next": null}'  # a wait that ended with none


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
    app = base_app(__name__, "seeker", auth, config, Document(TITLE, DESCRIPTION))
    app.extensions["seeker"] = seeker
    serve_metrics(app, SeekerCollector.of(seeker), metrics or SeekerMetrics())
    register_dashboard(app)
    add_workflow_routes(app, seeker)  # inputs and arrays

    add_task_routes(app, seeker)
    add_event_routes(app, seeker)
    add_helper_routes(app, seeker)  # seeker/api/helper_routes.py
    return app


def add_task_routes(app: Flask, seeker: Seeker) -> None:
    """What users do: submit, list, read and cancel tasks, their results and
    artifacts."""

    @app.post("/api/v1/tasks")
    @operation(
        {201: (TaskDetail, "the task, pending: dispatch follows at once")},
        body=TaskSubmission,
        tag="tasks",
    )
    def submit(body: TaskSpec):
        """Submit a task"""
        return seeker.submit(body), 201

    @app.get("/api/v1/tasks")
    @operation(
        {200: (TaskList, "the tasks"), 400: "unknown state, bad limit or cursor"},
        query=TaskQuery,
        tag="tasks",
    )
    def list_tasks():
        """List tasks, newest first"""
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
    @operation(
        {
            200: (TaskDetail, "the task (with `wait`: once it ended, or when the time is up)"),
            400: "wait out of range",
            404: NO_TASK,
        },
        params=TASK_ID,
        query=TaskWaitQuery,
        tag="tasks",
    )
    def get_task(task_id: str):
        """One task, with its assignments"""
        wait = int_arg("wait", 0, 0, MAX_EVENT_WAIT)

        def look(resumed: tuple | None) -> tuple[dict, bool]:
            task = seeker.task(task_id)
            return task, task["state"] in FINAL

        # with `wait` and the task not ended, the request is parked (no
        # thread) until it ends, here or at another seeker
        return answer_or_park(request.environ, TASK_WAITS + task_id, look, lambda: wait)

    @app.delete("/api/v1/tasks/<task_id>")
    @operation(
        {
            200: (TaskDetail, "the task, now cancelled"),
            404: NO_TASK,
            409: "the task already ended",
        },
        params=TASK_ID,
        tag="tasks",
    )
    def cancel_task(task_id: str):
        """Cancel a task"""
        return seeker.cancel(task_id)

    @app.get("/api/v1/tasks/<task_id>/results")
    @operation(
        {200: (TaskResults, "every result"), 404: NO_TASK, 503: NO_CHANNEL},
        params=TASK_ID,
        tag="tasks",
    )
    def task_results(task_id: str):
        """A task's results, from the channel"""
        return seeker.results(task_id)

    @app.get("/api/v1/artifacts/<artifact_id>")
    @operation(
        {
            200: (Media(OCTET_STREAM), "the bytes, streamed"),
            404: "no such artifact",
            503: NO_CHANNEL,
        },
        tag="tasks",
    )
    def artifact(artifact_id: str):
        """Download an artifact (passed through from the channel)"""
        upstream = seeker.artifact(artifact_id)
        headers = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() in ("content-type", "content-length", "content-disposition")
        }
        body = stream_with_context(upstream.iter_content(1024 * 1024))
        return Response(body, status=200, headers=headers, direct_passthrough=True)


def add_event_routes(app: Flask, seeker: Seeker) -> None:
    """The event log: read a page, or wait for the next event."""
    newest = NewestEvent()  # a follower's next request parks without a read

    @app.get("/api/v1/events")
    @operation(
        {
            200: (EventPage, "one page (with `wait`: once there is an event, or empty)"),
            400: "after, limit or wait out of range",
        },
        query=EventQuery,
        tag="events",
    )
    def events():
        """The event log, oldest first, from a sequence number on"""
        after = int_arg("after", 0, 0, 2**62)
        limit = int_arg("limit", 100, 1, 1000)
        wait = int_arg("wait", 0, 0, MAX_EVENT_WAIT)

        parker = request.environ.get(PARK)

        def look(resumed: tuple | None) -> tuple[dict, bool]:
            if seeker.events is None:
                return {"events": [], "next": None}, True
            generation = parker.generation(EVENT_WAITS) if parker is not None else None
            # a follower asking again right after its answer: nothing to read
            if wait and resumed is None and newest.nothing_after(generation, after):
                return {"events": [], "next": None}, False  # parked at once
            found = seeker.events.since(after, limit)
            if generation is not None and len(found) < limit:
                newest.found(generation, found[-1]["seq"] if found else after)
            return {"events": found, "next": found[-1]["seq"] if found else None}, bool(found)

        # with `wait` and nothing yet, the request is parked (no thread)
        # until an event is published, here or at another seeker
        return answer_or_park(
            request.environ, EVENT_WAITS, look, lambda: wait, expired=lambda: NO_EVENTS
        )
