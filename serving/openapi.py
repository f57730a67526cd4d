"""OpenAPI 3.1 documents of the services' REST APIs, derived from each Flask
app by spectree, and the route that serves them.

A view declares once, with @operation (serving/operations.py), what the app
cannot tell: its JSON body (a pydantic model; the view receives it validated
as `body`), its query parameters (a model, for the document: the view reads
them itself), its answers and its tag. spectree reads the rest from the app:
the paths and path parameters from its url_map, each summary and description
from the view's docstring, the schemas from the models (bodies in validation
mode, answers in serialization mode). What every route shares is added here
from serving.access: the bearer scheme, who may call it (`x-seeker-roles`,
from @allow and @public), the 401 and 403 of a route that takes a secret,
and the 400, 413 and 422 of one that reads a JSON body, all
`{"error", "detail"}`.

The document is an API description, not data: `GET /api/v1/openapi.json` is
@public."""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from pydantic import BaseModel
from spectree import SpecTree
from spectree.models import SecurityScheme, SecuritySchemeData

from serving.access import OPEN_PATHS, public
from serving.operations import (
    ERROR,
    INVALID,
    JSON,
    REF,
    Answer,
    Media,
    Operation,
    is_model,
    operation,
)
from serving.principals import USER

OPENAPI_PATH = "/api/v1/openapi.json"

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error answer: a short message and what to do or the offending value.",
    "properties": {
        "error": {"type": "string", "description": "a short message"},
        "detail": {"description": "what to do, or the offending value"},
    },
    "required": ["error", "detail"],
}
INVALID_SCHEMA = {
    "type": "object",
    "description": "A 422: each invalid field by its dotted path; `(body)` for a rule "
    "that spans fields.",
    "properties": {
        "error": {"type": "string", "examples": ["invalid field(s): image, resources.memory"]},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                "required": ["field", "message"],
            },
        },
    },
    "required": ["error", "detail"],
}

ROLE_WORDS = {
    "user": "the user token (--token)",
    "join": "the join token (--join-token)",
    "helper": "a helper's own credential (issued at registration)",
    "seeker": "the credential the seeker issued to this helper",
    "receipt": "the seeker's receipt for this attempt",
    "grant": "the seeker's grant to read this input (sent to a helper with its assignment)",
}
BEARER = (
    "`Authorization: Bearer <secret>`; which secret each operation takes is in its "
    "description: the user token (--token), the join token (--join-token), a helper's "
    "credential (issued by the seeker at registration), an attempt's receipt "
    "(made by the seeker, checked by the channel), or an input's grant (the same). "
    "See docs/security.md."
)
BODY_ANSWERS = {
    400: "not a JSON object: no JSON content type, malformed JSON, not an object",
    413: "the body is larger than the server accepts (20 MiB)",
}


class _Tree(SpecTree):
    """spectree over a plain Flask app: the metadata of a view is what its
    @operation declared, registered through `validate()` when the document
    is built (the views themselves are not wrapped by spectree)."""

    def __init__(self, **config):
        super().__init__("flask", **config)
        self._registered: dict[int, Callable] = {}

    def get_function_metadata(self, func: Callable):
        declared = getattr(func, "seeker_operation", None)
        if declared is None:
            return None
        key = id(declared)
        if key not in self._registered:
            self._registered[key] = self.validate(**declared.spectree_args())(_stand_in)
        return super().get_function_metadata(self._registered[key])


def _stand_in():  # what spectree's validate() wraps to hold an operation's metadata
    return None


class Document:
    """One app's OpenAPI document, built on first use and then kept."""

    def __init__(self, title: str, description: str):
        self.title = title
        self.description = description
        self._built: dict | None = None

    def of(self, app: Flask) -> dict:
        if self._built is None:
            tree = _Tree(
                mode="greedy",
                annotations=False,
                title=self.title,
                description=self.description,
                version=_version(),
                naming_strategy=_model_name,
                nested_naming_strategy=lambda _parent, child: child,
                security_schemes=[
                    SecurityScheme(
                        name="bearer",
                        data=SecuritySchemeData(type="http", scheme="bearer", description=BEARER),
                    )
                ],
                security={"bearer": []},
            )
            with app.app_context():
                spec = tree.spec
            self._built = _finish(spec, app)
        return self._built


def serve_openapi(app: Flask, document: Document) -> None:
    """Serve `document` at `GET /api/v1/openapi.json`, without a token."""

    @operation({200: ({"type": "object"}, "the OpenAPI 3.1 document of this service")}, tag="meta")
    @public
    def api_document():
        """This document"""
        return document.of(app)

    app.extensions["openapi"] = document
    app.add_url_rule(OPENAPI_PATH, "api_document", api_document, methods=["GET"])


def document_of(app: Flask) -> dict:
    """The OpenAPI document `app` serves."""
    return app.extensions["openapi"].of(app)


def operations_of(app: Flask):
    """(method, OpenAPI path, view) of every route of `app`."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, openapi_path(rule.rule), view


def body_models(app: Flask) -> dict[tuple[str, str], type[BaseModel]]:
    """(method, OpenAPI path) -> the model a route's JSON body is validated with."""
    found = {}
    for method, path, view in operations_of(app):
        declared = getattr(view, "seeker_operation", None)
        if declared is not None and declared.body is not None:
            found[(method, path)] = declared.body
    return found


def openapi_path(rule: str) -> str:
    """/api/v1/tasks/<task_id>, /dashboard/<path:filename> -> {task_id}, {filename}"""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def roles_of(view: Callable, path: str) -> list[str]:
    """Whose secret a view takes (serving.access.allow); none for a public one."""
    if path in OPEN_PATHS or getattr(view, "seeker_public", False):
        return []
    return sorted(getattr(view, "seeker_roles", {USER}))


def _finish(spec: dict, app: Flask) -> dict:
    """spectree's document, with what every route shares."""
    names: dict[str, list[tuple[str, dict]]] = {}
    for method, path, view in operations_of(app):
        op = spec["paths"][path][method.lower()]
        declared: Operation = getattr(view, "seeker_operation", None) or Operation({})
        _shared(op, declared, roles_of(view, path), method, path)
        names.setdefault(op["operationId"], []).append((path, op))
    for same in names.values():  # one view at two paths: /healthz and /api/v1/healthz
        for path, op in same if len(same) > 1 else ():
            if path.startswith("/api/"):
                op["operationId"] = op["operationId"].replace("_", "_api_", 1)
    schemas = {**spec["components"]["schemas"], "Error": ERROR_SCHEMA, "Invalid": INVALID_SCHEMA}
    used = _referenced(spec["paths"], schemas)
    spec["components"]["schemas"] = {k: v for k, v in sorted(schemas.items()) if k in used}
    if not spec["tags"]:
        del spec["tags"]
    return spec


def _referenced(value: Any, schemas: dict, found: set[str] | None = None) -> set[str]:
    """The names of the schemas `value` refers to, directly or through others."""
    found = set() if found is None else found
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF.format(model="")):
            name = ref.rsplit("/", 1)[1]
            if name not in found:
                found.add(name)
                _referenced(schemas[name], schemas, found)
        for item in value.values():
            _referenced(item, schemas, found)
    elif isinstance(value, list):
        for item in value:
            _referenced(item, schemas, found)
    return found


def _shared(op: dict, declared: Operation, roles: list[str], method: str, path: str) -> None:
    op["operationId"] = declared.name or _operation_id(method, path)
    if not op.get("description"):
        op.pop("description", None)
    if not op["tags"]:
        del op["tags"]
    if not op["parameters"]:
        del op["parameters"]
    else:
        for param in op["parameters"]:
            _tidy(param)
    op["x-seeker-roles"] = roles
    if roles:
        who = " or ".join(ROLE_WORDS[r] for r in roles)
        op["description"] = f"{op.get('description', '')}\n\nTakes {who}.".strip()
    else:
        op["security"] = []
    if declared.raw_body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {declared.raw_body: {"schema": {"type": "string", "format": "binary"}}},
        }
    op["responses"] = _responses(op.get("responses", {}), declared, roles)


def _tidy(param: dict) -> None:
    """A parameter as a reader wants it: its description once, no title,
    and no `null` default (absent means absent)."""
    schema = param["schema"]
    for key in ("title", "description"):
        schema.pop(key, None)
    if schema.get("default", 0) is None:
        del schema["default"]
    if not param.get("description"):
        param.pop("description", None)


def _responses(documented: dict, declared: Operation, roles: list[str]) -> dict:
    answers = {str(status): answer for status, answer in declared.answers.items()}
    if declared.body is not None:
        answers.update({str(s): d for s, d in BODY_ANSWERS.items() if str(s) not in answers})
        answers.setdefault("422", (INVALID, "invalid fields, each named"))
    if roles:
        answers.setdefault("401", "the bearer token is missing or wrong")
        answers.setdefault("403", f"the secret is not {' or '.join(ROLE_WORDS[r] for r in roles)}")
    out = {}
    for status, answer in sorted(answers.items()):
        if status in documented and isinstance(answer, tuple) and is_model(answer[0]):
            out[status] = documented[status]  # spectree's, with the model's $ref
        else:
            out[status] = _response(int(status), answer)
    return out


def _response(status: int, answer: Answer) -> dict:
    what, description = (None, answer) if isinstance(answer, str) else answer
    if what is None and status >= 400:
        what = ERROR
    out: dict[str, Any] = {"description": description}
    if isinstance(what, Media):
        if what.headers:
            out["headers"] = what.headers
        out["content"] = {what.media_type: {"schema": what.schema}}
    elif what is not None:
        out["content"] = {JSON: {"schema": what}}
    return out


def _operation_id(method: str, path: str) -> str:
    """get_tasks_task_id for GET /api/v1/tasks/{task_id}"""
    words = [w.strip("{}") for w in path.split("/") if w and w not in ("api", "v1")]
    name = "_".join(w.replace(".", "_").replace("-", "_") for w in words) or "root"
    return f"{method.lower()}_{name}"


def _model_name(model: type) -> str:
    return model.__name__


def _version() -> str:
    try:
        return importlib.metadata.version("seeker")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"
