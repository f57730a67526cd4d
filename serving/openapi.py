"""OpenAPI 3.1 documents of the services' REST APIs, and the route that
serves them.

Each service lists its routes as `Route` objects (method, path, parameters,
body, replies); the request and answer schemas are the pydantic models'
JSON Schemas (`model_json_schema`), gathered under `components/schemas`.
Every route but the public ones needs the bearer token; every route that
reads a JSON body also answers 400, 413 and 422 the way `json_body()` and
the error handlers do, so a route lists only its own answers.

The document is an API description, not data: `GET /api/v1/openapi.json` is
@public."""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serving.auth import public

OPENAPI_PATH = "/api/v1/openapi.json"
JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
REF = "#/components/schemas/{model}"

# A schema: a pydantic model, or a JSON Schema in which any value may be a model.
Schema = Any

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
ERROR = {"$ref": "#/components/schemas/Error"}
INVALID = {"$ref": "#/components/schemas/Invalid"}


@dataclass(frozen=True)
class Param:
    """A query or path parameter; `schema` is its JSON Schema (types, limits)."""

    name: str
    schema: dict
    where: Literal["query", "path"] = "query"
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Reply:
    """One answer of a route: a body of `schema` (a model, or a JSON Schema
    in which any value may be a model; None: no schema) and media type."""

    description: str
    schema: Schema
    media_type: str = JSON
    headers: dict[str, dict] = field(default_factory=dict)


def optional(*names: str):
    """A model's `json_schema_extra` that leaves `names` out of `required`
    (for an answer's field that is present only sometimes, in a model whose
    other defaults are always present)."""

    def drop(schema: dict) -> None:
        schema["required"] = [n for n in schema.get("required", []) if n not in names]
        if not schema["required"]:
            del schema["required"]

    return drop


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


def error(description: str) -> Reply:
    """An error answer: `{"error", "detail"}`."""
    return Reply(description, ERROR)


@dataclass(frozen=True)
class Route:
    """One route of a service as its Flask app registers it (`path` in
    OpenAPI's `{name}` form)."""

    method: str
    path: str
    summary: str
    replies: dict[int, Reply]
    params: tuple[Param, ...] = ()
    body: type[BaseModel] | None = None  # a JSON object validated by this model
    raw_body: str | None = None  # or raw bytes of this media type
    public: bool = False
    description: str = ""
    tag: str | None = None
    name: str | None = None  # the operationId, when the one made from the path would clash
    roles: tuple[str, ...] = ("user",)  # whose bearer secret it takes (serving.auth.allow)

    @property
    def operation_id(self) -> str:
        if self.name:
            return self.name
        words = [w.strip("{}") for w in self.path.split("/") if w and w not in ("api", "v1")]
        name = "_".join(w.replace(".", "_").replace("-", "_") for w in words) or "root"
        return f"{self.method.lower()}_{name}"

    def all_replies(self) -> dict[int, Reply]:
        """The route's own answers and those every such route gives."""
        replies = dict(self.replies)
        if self.body is not None:
            replies.setdefault(
                400, error("not a JSON object: no JSON content type, malformed JSON, not an object")
            )
            replies.setdefault(413, error("the body is larger than the server accepts (20 MiB)"))
            replies.setdefault(422, Reply("invalid fields, each named", INVALID))
        if not self.public:
            replies.setdefault(401, error("the bearer token is missing or wrong"))
            replies.setdefault(403, error(f"the secret is not {self.who()}"))
        return dict(sorted(replies.items()))

    def who(self) -> str:
        """Who may call it, in words."""
        return " or ".join(ROLE_WORDS[r] for r in self.roles)


def health_routes(service: str) -> list[Route]:
    """`GET /healthz` and `GET /api/v1/healthz`, which every service answers."""
    answer = {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean", "const": True},
            "service": {"type": "string", "const": service},
        },
        "required": ["ok", "service"],
    }
    return [
        Route(
            "GET",
            path,
            "Health check",
            {200: Reply("the service is up", answer)},
            public=True,
            tag="health",
            name=name,
        )
        for path, name in (("/healthz", "get_healthz"), ("/api/v1/healthz", "get_api_healthz"))
    ]


def metrics_route() -> Route:
    """`GET /metrics`, the Prometheus text format (see serving.metrics)."""
    return Route(
        "GET",
        "/metrics",
        "Prometheus metrics",
        {200: Reply("metrics in the Prometheus text format", {"type": "string"}, "text/plain")},
        tag="metrics",
    )


def openapi_route() -> Route:
    return Route(
        "GET",
        OPENAPI_PATH,
        "This document",
        {200: Reply("the OpenAPI 3.1 document of this service", {"type": "object"})},
        public=True,
        tag="meta",
    )


def common_routes(service: str) -> list[Route]:
    """The routes every service's app has besides its own."""
    return [*health_routes(service), metrics_route(), openapi_route()]


def build_document(
    title: str, description: str, routes: Iterable[Route], version: str | None = None
) -> dict:
    """An OpenAPI 3.1 document of `routes`; the pydantic models they name
    become `components/schemas` (request bodies in validation mode, answers
    in serialization mode)."""
    routes = list(routes)
    models: dict[tuple[type[BaseModel], str], None] = {}
    for route in routes:
        if route.body is not None:
            models[(route.body, "validation")] = None
        for reply in route.replies.values():
            for model in _models_in(reply.schema):
                models[(model, "serialization")] = None
    refs, defs = models_json_schema(list(models), ref_template=REF) if models else ({}, {})
    schemas = {"Error": ERROR_SCHEMA, "Invalid": INVALID_SCHEMA, **defs.get("$defs", {})}

    paths: dict[str, dict] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version or _version(), "description": description},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": BEARER,
                }
            },
        },
        "security": [{"bearer": []}],
    }


def service_document(
    title: str, description: str, routes: Callable[[], Iterable[Route]]
) -> Callable[[], dict]:
    """A service's document, built on first use and then kept: every app of
    a process serves the same."""
    return functools.cache(lambda: build_document(title, description, routes()))


def serve_openapi(app: Flask, document: dict) -> None:
    """Serve `document` at `GET /api/v1/openapi.json`, without a token."""

    @public
    def openapi_document():
        return document

    app.add_url_rule(OPENAPI_PATH, "openapi", openapi_document, methods=["GET"])


def _operation(route: Route, refs: dict) -> dict:
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary}
    description = route.description
    if not route.public:
        description = f"{description}\n\nTakes {route.who()}.".strip()
    if description:
        op["description"] = description
    op["x-seeker-roles"] = [] if route.public else list(route.roles)
    if route.tag:
        op["tags"] = [route.tag]
    if route.public:
        op["security"] = []
    if route.params:
        op["parameters"] = [_parameter(p) for p in route.params]
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": refs[(route.body, "validation")]}},
        }
    elif route.raw_body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {route.raw_body: {"schema": {"type": "string", "format": "binary"}}},
        }
    op["responses"] = {
        str(status): _response(reply, refs) for status, reply in route.all_replies().items()
    }
    return op


def _parameter(p: Param) -> dict:
    out = {"name": p.name, "in": p.where, "required": p.where == "path" or p.required}
    if p.description:
        out["description"] = p.description
    out["schema"] = p.schema
    return out


def _response(reply: Reply, refs: dict) -> dict:
    out: dict[str, Any] = {"description": reply.description}
    if reply.headers:
        out["headers"] = reply.headers
    content: dict[str, Any] = {}
    if reply.schema is not None:
        content["schema"] = _resolve(reply.schema, refs)
    out["content"] = {reply.media_type: content}
    return out


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _models_in(schema: Schema) -> Iterable[type[BaseModel]]:
    if _is_model(schema):
        yield schema
    elif isinstance(schema, dict):
        for value in schema.values():
            yield from _models_in(value)
    elif isinstance(schema, list | tuple):
        for value in schema:
            yield from _models_in(value)


def _resolve(schema: Schema, refs: dict) -> Any:
    """`schema` with every model replaced by its `$ref`."""
    if _is_model(schema):
        return refs[(schema, "serialization")]
    if isinstance(schema, dict):
        return {k: _resolve(v, refs) for k, v in schema.items()}
    if isinstance(schema, list | tuple):
        return [_resolve(v, refs) for v in schema]
    return schema


def _version() -> str:
    try:
        return importlib.metadata.version("seeker")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"
