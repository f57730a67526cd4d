"""The helper's REST API: take assignments, cancel them, say what it runs."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from helper.executor import Executor
from helper.metrics import HelperCollector, HelperMetrics
from helper.models import Assignment
from helper.openapi import document
from serving.access import allow
from serving.flaskapp import base_app, serve_metrics
from serving.inputs import json_model
from serving.openapi import serve_openapi
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

    app = base_app(__name__, "helper", Authenticator({"user": token}, (the_seeker,)), config)
    app.extensions["executor"] = executor
    serve_metrics(app, HelperCollector(executor, describe), metrics or HelperMetrics())
    serve_openapi(app, document())

    @app.post("/api/v1/assignments")
    @allow(SEEKER)
    def assign():
        assignment = json_model(Assignment)
        return executor.submit(assignment), 202

    @app.delete("/api/v1/assignments/<key>")
    @allow(SEEKER)
    def cancel(key: str):
        return executor.cancel(key)

    @app.get("/api/v1/status")
    @allow(SEEKER, "user")
    def status():
        return {**describe(), "slots": executor.slots, "running": executor.running()}

    return app
