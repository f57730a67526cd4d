"""The seeker's routes for helpers: registration, heartbeats, the long
poll of pulling helpers, the events they report, and listing and removing
helpers (the last two for users)."""

from __future__ import annotations

import json
from functools import partial

from flask import Flask, request

from seeker.api.helper_openapi import (
    Beat,
    EventRecorded,
    HelperList,
    HelperQuery,
    ListedHelper,
    RegisteredHelper,
    Removed,
    Work,
)
from seeker.api.openapi import NO_TASK, TASK_ID
from seeker.control.credentials import HELPER, JOIN
from seeker.control.operations import Seeker
from seeker.helper_models import (
    HELPER_NAME,
    AssignmentEvent,
    Heartbeat,
    HelperRegistration,
    PollRequest,
)
from serving.access import allow, principal
from serving.errors import BadRequest
from serving.inputs import int_arg
from serving.operations import operation
from serving.parking import NEW_CONNECTION, answer_or_park

# helpers a page of GET /api/v1/helpers lists unless asked for another
# number, and the most it lists (the client and the CLI read every page)
HELPER_PAGE = 100
MAX_HELPER_PAGE = 1000


def add_helper_routes(app: Flask, seeker: Seeker) -> None:
    @app.post("/api/v1/tasks/<task_id>/events")
    @operation(
        {200: (EventRecorded, "what the event changed"), 404: NO_TASK},
        body=AssignmentEvent,
        params=TASK_ID,
        tag="helpers",
    )
    @allow(HELPER)
    def assignment_event(task_id: str, body: AssignmentEvent):
        """An assignment changed state (sent by helpers)"""
        return seeker.assignment_event(task_id, body, principal())

    @app.post("/api/v1/helpers")
    @operation(
        {
            200: (RegisteredHelper, "the helper record"),
            403: "a helper's credential used to register another helper, "
            "or the user token where a separate join token is set",
            409: "the name is taken by another helper",
        },
        body=HelperRegistration,
        tag="helpers",
    )
    @allow(JOIN, HELPER)
    def register_helper(body: HelperRegistration):
        """Register a helper (and heartbeat)"""
        return seeker.register(body, principal()), 200

    @app.post("/api/v1/helpers/<helper_id>/heartbeat")
    @operation(
        {
            200: (Beat, "the heartbeat interval to keep, and the runs to stop"),
            403: "a helper's credential used for another helper",
            404: "no such helper (purged or removed): register again",
            409: "another process of the helper registered: register",
        },
        body=Heartbeat,
        tag="helpers",
    )
    @allow(HELPER)
    def heartbeat(helper_id: str, body: Heartbeat):
        """A registered helper is alive (nothing else changed)"""
        return seeker.heartbeat(helper_id, body, principal())

    @app.post("/api/v1/helpers/<helper_id>/work")
    @operation(
        {
            200: (Work, "its work, or nothing once the wait is over"),
            403: "a helper's credential used to poll for another helper",
            404: "no such helper",
            409: "the helper is registered in push mode",
        },
        body=PollRequest,
        tag="helpers",
    )
    @allow(HELPER)
    def poll_work(helper_id: str, body: PollRequest):
        """A pulling helper's long poll for its work"""
        # its work at once if it has some; else the request is parked (no
        # thread) until some comes, or until the wait is over (answered empty)
        poll = body

        def look(resumed: tuple | None) -> tuple[dict, bool]:
            new_connection = resumed is None and request.environ.get(NEW_CONNECTION, True)
            work = seeker.poll(helper_id, poll, principal(), new_connection)
            answer = {**work, **seeker.poll_intervals()}
            return answer, bool(work["assignments"] or work["stop"])

        return answer_or_park(
            request.environ,
            helper_id,
            look,
            lambda: seeker.parked_wait(poll.wait),
            request.get_data(),
            # when its time is up, that answer is sent without this view running again
            expired=partial(nothing_came_json, seeker),
        )

    @app.get("/api/v1/helpers")
    @operation(
        {200: (HelperList, "a page of helpers"), 400: "bad limit, cursor or online"},
        query=HelperQuery,
        tag="helpers",
    )
    def list_helpers():
        """List helpers, by name"""
        return seeker.helper_list(*page_query())

    @app.get("/api/v1/helpers/<helper_id>")
    @operation(
        {200: (ListedHelper, "the helper, as the list shows it"), 404: "no such helper"},
        params={"helper_id": "the helper's id, or its name"},
        tag="helpers",
    )
    def get_helper(helper_id: str):
        """One helper, by id or name"""
        return seeker.helper(helper_id)

    @app.delete("/api/v1/helpers/<helper_id>")
    @operation({200: (Removed, "removed"), 404: "no such helper"}, tag="helpers")
    def remove_helper(helper_id: str):
        """Remove a helper"""
        seeker.remove_helper(helper_id)
        return {"removed": helper_id}


def page_query() -> tuple[int, str | None, bool | None]:
    """GET /api/v1/helpers's limit, after and online (400 for a bad one)."""
    limit = int_arg("limit", HELPER_PAGE, 1, MAX_HELPER_PAGE)
    after = request.args.get("after") or None
    if after is not None and not HELPER_NAME.fullmatch(after):
        raise BadRequest(
            "query parameter 'after' is not a helper's name",
            "pass the 'next' value of the previous page",
        )
    online = request.args.get("online")
    if online not in (None, "true", "false"):
        raise BadRequest(
            "query parameter 'online' must be true or false", "leave it out for every helper"
        )
    return limit, after, None if online is None else online == "true"


def nothing_came_json(seeker: Seeker) -> bytes:
    """A poll's answer when nothing came while it waited (news would have
    woken it): empty, and asking again would cost what a poll does."""
    body = {"assignments": [], "stop": [], **seeker.poll_intervals()}
    return json.dumps(body).encode()
