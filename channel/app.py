"""The channel's REST API: store a result, list a task's results."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Flask, request

from channel.models import ResultIn
from channel.store import ResultStore
from serving.errors import BadRequest, NotFound
from serving.flaskapp import base_app, int_arg, json_body


def create_app(config: dict | None = None, *, store: ResultStore, token: str, clock=None) -> Flask:
    app = base_app(__name__, "channel", token, config)
    app.extensions["results"] = store
    now = clock or (lambda: datetime.now(timezone.utc))

    @app.post("/api/v1/results")
    def post_result():
        result = ResultIn.model_validate(json_body())
        doc, created = store.add(result.model_dump(mode="python"), received_at=now())
        return doc, 201 if created else 200

    @app.get("/api/v1/results")
    def list_results():
        task_id = request.args.get("task_id")
        if not task_id:
            raise BadRequest("query parameter 'task_id' is required", "e.g. ?task_id=<id>")
        limit = int_arg("limit", 100, 1, 500)
        order = request.args.get("order", "oldest")
        if order not in ("oldest", "newest"):
            raise BadRequest("query parameter 'order' must be 'oldest' or 'newest'", order)
        try:
            results, cursor = store.for_task(
                task_id,
                limit=limit,
                after=request.args.get("after"),
                newest_first=order == "newest",
            )
        except ValueError:
            raise BadRequest(
                "query parameter 'after' is not a valid cursor",
                "pass the 'next' value of the previous page",
            ) from None
        return {"results": results, "next": cursor}

    @app.get("/api/v1/results/<result_id>")
    def get_result(result_id: str):
        doc = store.get(result_id)
        if doc is None:
            raise NotFound("no such result", result_id)
        return doc

    return app
