"""The channel's REST API: store a result, list a task's results, and the
artifacts (files) of each attempt."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Flask, request

from channel.artifact_api import add_artifact_routes, check_receipt, required_arg
from channel.artifacts import DEFAULT_MAX_ARTIFACT_BYTES, ArtifactStore
from channel.input_api import add_input_routes
from channel.inputs import InputStore
from channel.metrics import ChannelCollector, ChannelMetrics
from channel.models import ResultIn, ResultStatus
from channel.openapi import DESCRIPTION, TITLE, Result, ResultPage, ResultQuery
from channel.store import ResultStore
from serving import grants, receipts
from serving.access import allow
from serving.errors import BadRequest, NotFound
from serving.flaskapp import base_app, serve_metrics
from serving.inputs import int_arg
from serving.openapi import Document
from serving.operations import operation
from serving.principals import Authenticator, Principal

STATUSES = [s.value for s in ResultStatus]


def create_app(
    config: dict | None = None,
    *,
    store: ResultStore,
    token: str,
    clock=None,
    artifacts: ArtifactStore | None = None,
    metrics: ChannelMetrics | None = None,
    receipt_key: bytes | None = None,
    inputs: InputStore | None = None,
) -> Flask:
    """`token` lets its holder read results and artifacts. Storing them takes
    the receipt the seeker made for that attempt (`receipt_key`, shared with
    the seeker; default: derived from the token, as the seeker does).
    Reading an input also takes the seeker's grant for it (same key).
    `artifacts` and `inputs` default to stores in the results' database.

    Config: MAX_ARTIFACT_BYTES (default 1 GiB), the largest artifact accepted;
    JSON bodies keep the MAX_CONTENT_LENGTH of every service."""
    receipt_key = receipt_key or receipts.receipt_key(None, token)

    def receipt(given: str) -> Principal | None:  # checked against the body by the view
        return (
            Principal(frozenset({receipts.RECEIPT}), given) if receipts.well_formed(given) else None
        )

    def grant(given: str) -> Principal | None:  # checked against the file by the view
        return Principal(frozenset({grants.GRANT}), given) if grants.holder_of(given) else None

    app = base_app(
        __name__,
        "channel",
        Authenticator({"user": token}, (receipt, grant)),
        {"MAX_ARTIFACT_BYTES": DEFAULT_MAX_ARTIFACT_BYTES, **(config or {})},
        Document(TITLE, DESCRIPTION),
    )
    artifacts = artifacts or ArtifactStore(store.results.database)
    app.extensions["results"] = store
    app.extensions["artifacts"] = artifacts
    metrics = metrics or ChannelMetrics()
    now = clock or (lambda: datetime.now(timezone.utc))
    serve_metrics(app, ChannelCollector(store, artifacts, now, metrics.stored), metrics)
    inputs = inputs or InputStore(store.results.database, artifacts)
    add_artifact_routes(app, artifacts, inputs, now, receipt_key)
    add_input_routes(app, inputs, now, receipt_key)

    def one(doc: dict) -> dict:
        return artifacts.attach([doc])[0]

    @app.post("/api/v1/results")
    @operation(
        {
            200: (Result, "stored before: the first copy (a retry stores nothing)"),
            201: (Result, "stored"),
            403: "the receipt is not the seeker's for this task, helper and attempt "
            "(or a token was sent instead of a receipt)",
            409: "another helper already sent a result for that attempt",
        },
        body=ResultIn,
        tag="results",
    )
    @allow(receipts.RECEIPT)
    def post_result(body: ResultIn):
        """Store a result"""
        check_receipt(receipt_key, body.task_id, body.helper_id, body.attempt)
        result = body.model_dump(mode="python", exclude={"artifact_count"})
        doc, created = store.add(result, received_at=now())
        metrics.result_posted(body.status, created)
        if created and body.artifact_count == 0:
            return dict(doc, artifacts=[]), 201  # none were sent first: nothing to look up
        return one(doc), 201 if created else 200

    @app.get("/api/v1/results")
    @operation(
        {200: (ResultPage, "one page, by arrival"), 400: "a bad query parameter"},
        query=ResultQuery,
        tag="results",
    )
    def list_results():
        """A task's results, a page at a time"""
        try:
            results, cursor = store.for_task(**results_query())
        except ValueError:
            raise BadRequest(
                "query parameter 'after' is not a valid cursor",
                "pass the 'next' value of the previous page",
            ) from None
        return {"results": artifacts.attach(results), "next": cursor}

    @app.get("/api/v1/results/<result_id>")
    @operation(
        {200: (Result, "the result"), 404: "no such result"},
        params={"result_id": "<task_id>.<attempt>"},
        tag="results",
    )
    def get_result(result_id: str):
        """One result"""
        doc = store.get(result_id)
        if doc is None:
            raise NotFound("no such result", result_id)
        return one(doc)

    return app


def results_query() -> dict:
    """The arguments of ResultStore.for_task from the query of
    GET /api/v1/results, or a 400 naming the parameter that is wrong."""
    task_id = required_arg("task_id")
    limit = int_arg("limit", 100, 1, 500)
    order = request.args.get("order", "oldest")
    if order not in ("oldest", "newest"):
        raise BadRequest("query parameter 'order' must be 'oldest' or 'newest'", order)
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"query parameter 'status' must be one of {', '.join(STATUSES)}", status)
    helper_id = request.args.get("helper_id")
    if helper_id == "":
        raise BadRequest(
            "query parameter 'helper_id' must not be empty", "leave it out for every helper"
        )
    return {
        "task_id": task_id,
        "limit": limit,
        "after": request.args.get("after"),
        "newest_first": order == "newest",
        "status": status,
        "helper_id": helper_id,
    }
