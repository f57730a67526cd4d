"""Each service's OpenAPI document (derived from its app by spectree, see
serving/openapi.py) stays true to its app: every route the
Flask app registers is documented and every documented route exists, the
routes open without a token are exactly those documented as such, and the
document is valid OpenAPI 3.1. (tests/fuzz checks the answers against it.)"""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from channel.app import create_app as channel_app
from channel.store import ResultStore
from helper.app import create_app as helper_app
from helper.executor import Executor
from seeker.api.app import create_app as seeker_app
from seeker.control.operations import Seeker
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore
from serving.access import OPEN_PATHS
from serving.openapi import OPENAPI_PATH, document_of

AUTOMATIC = {"HEAD", "OPTIONS"}  # Flask answers these for every route itself


def make_seeker(db, clock):
    return seeker_app(seeker=Seeker(TaskStore(db), HelperStore(db), clock), token="t")


def make_channel(db, clock):
    return channel_app(store=ResultStore(db), token="t", clock=clock)


def make_helper(db, clock):
    return helper_app(executor=Executor(None, None, "h1", "gpu-1"), token="t")


SERVICES = {"seeker": make_seeker, "channel": make_channel, "helper": make_helper}


@pytest.fixture(params=sorted(SERVICES))
def service(request, mock_db, clock):
    app = SERVICES[request.param](mock_db, clock)
    return app, document_of(app)


def openapi_path(rule: str) -> str:
    """/api/v1/tasks/<task_id>, /dashboard/<path:filename> -> {task_id}, {filename}"""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def registered(app) -> set[tuple[str, str]]:
    return {
        (method, openapi_path(rule.rule))
        for rule in app.url_map.iter_rules()
        for method in rule.methods - AUTOMATIC
    }


def documented(doc: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}


def operations(doc: dict):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


def test_every_route_is_documented_and_every_documented_route_exists(service):
    app, doc = service
    assert registered(app) - documented(doc) == set(), "routes missing from the document"
    assert documented(doc) - registered(app) == set(), "documented routes the app lacks"


def test_the_document_is_valid_openapi_3_1(service):
    _, doc = service
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_path_parameters_are_those_of_the_route(service):
    _, doc = service
    for _, path, op in operations(doc):
        in_path = set(re.findall(r"{([^}]+)}", path))
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == in_path, path


def test_the_document_is_served_without_a_token(service):
    app, doc = service
    resp = app.test_client().get(OPENAPI_PATH)
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert resp.get_json() == doc


def test_routes_open_without_a_token_are_those_documented_as_public(service):
    app, doc = service
    client = app.test_client()
    for method, path, op in operations(doc):
        public = op.get("security", doc["security"]) == []
        url = re.sub(r"{[^}]+}", "x", path)
        with client.open(url, method=method) as resp:  # closes a file-backed answer
            status = resp.status_code
        if public:
            assert status != 401, f"{method} {path} is documented as public"
        else:
            assert status == 401, f"{method} {path} answers without a token"
            assert "401" in op["responses"]


def roles_of(app, method: str, path: str) -> list[str]:
    """The roles the app's view for (method, path) takes (serving.access.allow)."""
    for rule in app.url_map.iter_rules():
        if openapi_path(rule.rule) == path and method in rule.methods:
            view = app.view_functions[rule.endpoint]
            if path in OPEN_PATHS or getattr(view, "seeker_public", False):
                return []
            return sorted(getattr(view, "seeker_roles", {"user"}))
    raise AssertionError(f"no route {method} {path}")


def test_the_roles_documented_are_those_the_app_checks(service):
    app, doc = service
    for method, path, op in operations(doc):
        assert sorted(op["x-seeker-roles"]) == roles_of(app, method, path), f"{method} {path}"
        if op["x-seeker-roles"]:
            assert "403" in op["responses"], f"{method} {path}"


def test_every_error_answer_has_the_error_body(service):
    _, doc = service
    for method, path, op in operations(doc):
        for status, answer in op["responses"].items():
            if int(status) < 400:
                continue
            schema = answer["content"]["application/json"]["schema"]
            assert schema["$ref"] in (
                "#/components/schemas/Error",
                "#/components/schemas/Invalid",
            ), f"{method} {path} {status}"


def test_json_bodies_may_be_refused_as_every_json_route_does(service):
    _, doc = service
    for method, path, op in operations(doc):
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            assert {"400", "413", "422"} <= set(op["responses"]), f"{method} {path}"


def test_an_event_answer_need_not_say_run(mock_db, clock):
    """`run` answers only an acknowledgement (an `accepted` event naming a
    boot_id): every other event's answer lacks it, as the fuzz suite saw."""
    doc = document_of(make_seeker(mock_db, clock))
    schema = doc["components"]["schemas"]["EventRecorded"]
    assert "run" in schema["properties"]
    assert "run" not in schema["required"]
    assert {"task_id", "recorded"} <= set(schema["required"])
