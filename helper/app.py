"""The helper's REST API: take assignments, cancel them, say what it runs."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from helper.executor import Executor
from helper.metrics import HelperCollector, HelperMetrics
from helper.models import Assignment
from helper.openapi import add_openapi_route
from serving.flaskapp import base_app, json_model
from serving.metrics import serve_metrics


def create_app(
    config: dict | None = None,
    *,
    executor: Executor,
    token: str,
    describe: Callable[[], dict] = dict,
    metrics: HelperMetrics | None = None,
) -> Flask:
    app = base_app(__name__, "helper", token, config)
    app.extensions["executor"] = executor
    serve_metrics(app, HelperCollector(executor, describe), metrics or HelperMetrics())
    add_openapi_route(app)

    @app.post("/api/v1/assignments")
    def assign():
        assignment = json_model(Assignment)
        return executor.submit(assignment), 202

    @app.delete("/api/v1/assignments/<key>")
    def cancel(key: str):
        return executor.cancel(key)

    @app.get("/api/v1/status")
    def status():
        return {**describe(), "slots": executor.slots, "running": executor.running()}

    return app
