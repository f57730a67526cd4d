"""The helper's REST API: take assignments, cancel them, say what it runs."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from helper.executor import Executor
from helper.metrics import HelperCollector, HelperMetrics
from helper.models import Assignment
from helper.openapi import DESCRIPTION, TITLE, Entry, Status
from serving.access import allow
from serving.flaskapp import base_app, serve_metrics
from serving.openapi import Document
from serving.operations import operation
from serving.principals import Authenticator, Principal, secret_equal

SEEKER = "seeker"  # the role of the credential this helper's seeker presents


def create_app(
    config: dict | None = None,
    *,
    executor: Executor,
    token: str,
    seeker_credentials: Callable[[], tuple[str, ...]] = tuple,
    describe: Callable[[], dict] = dict,
    metrics: HelperMetrics | None = None,
) -> Flask:
    """Assignments come only from the seeker, which presents the credential
    it issued to this helper (`seeker_credentials`: the ones now valid).
    `token` (the operator's) reads status and metrics."""

    def the_seeker(given: str) -> Principal | None:
        # every credential is compared, so the time taken does not say which matched
        matched = [c for c in seeker_credentials() if c and secret_equal(given, c)]
        return Principal(frozenset({SEEKER})) if matched else None

    auth = Authenticator({"user": token}, (the_seeker,))
    app = base_app(__name__, "helper", auth, config, Document(TITLE, DESCRIPTION))
    app.extensions["executor"] = executor
    serve_metrics(app, HelperCollector(executor, describe), metrics or HelperMetrics())

    @app.post("/api/v1/assignments")
    @operation(
        {
            202: (Entry, "accepted (also for a run already under way)"),
            403: "refused by this helper's policy (--allow-image, --allow-mount), or "
            "the caller is not this helper's seeker",
            409: "the assignment is for another helper",
            429: "every slot is in use",
        },
        body=Assignment,
        tag="assignments",
    )
    @allow(SEEKER)
    def assign(body: Assignment):
        """Run an assignment (sent by the seeker)"""
        return executor.submit(body), 202

    @app.delete("/api/v1/assignments/<key>")
    @operation(
        {200: (Entry, "the entry, with cancel_requested"), 404: "no such running assignment"},
        params={"key": "<task_id>.<attempt>"},
        tag="assignments",
    )
    @allow(SEEKER)
    def cancel(key: str):
        """Stop an assignment (answers at once, stops in the background)"""
        return executor.cancel(key)

    @app.get("/api/v1/status")
    @operation({200: (Status, "its resources and running assignments")}, tag="status")
    @allow(SEEKER, "user")
    def status():
        """What the helper is doing"""
        return {**describe(), "slots": executor.slots, "running": executor.running()}

    return app
