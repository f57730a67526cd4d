"""The Flask base every service's app factory starts from."""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import TypeVar

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel

from serving.access import require_auth
from serving.errors import BadRequest, install_error_handlers
from serving.principals import Authenticator

M = TypeVar("M", bound=BaseModel)
DEFAULT_MAX_BODY = 20 * 1024 * 1024


class IsoJSONProvider(DefaultJSONProvider):
    """Datetimes as ISO 8601, enums as their values."""

    @staticmethod
    def default(o):
        if isinstance(o, datetime):
            return o.isoformat()
        if isinstance(o, Enum):
            return o.value
        return DefaultJSONProvider.default(o)


def base_app(
    import_name: str, service: str, auth: Authenticator | str, config: dict | None = None
) -> Flask:
    """`auth`: who may call what (a plain string: the one user token)."""
    app = Flask(import_name, static_folder=None)  # a service serves its files explicitly
    app.json = IsoJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = DEFAULT_MAX_BODY
    app.config.update(config or {})
    install_error_handlers(app)
    require_auth(app, Authenticator.of(auth))

    @app.get("/healthz")
    @app.get("/api/v1/healthz")
    def healthz():
        return {"ok": True, "service": service}

    return app


def json_body() -> dict:
    """The request's JSON object, or a 400 that says what is wrong."""
    if not request.is_json:
        raise BadRequest("expected a JSON body", "send Content-Type: application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequest("malformed JSON", "the request body is not valid JSON")
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object", f"got a JSON {type(body).__name__}")
    return body


def json_model(model: type[M]) -> M:
    """The request's JSON object validated strictly against `model`: no
    "2" for 2 and no true for 1 (400 when it is not a JSON object at all,
    422 naming the fields that are wrong)."""
    json_body()
    return model.model_validate_json(request.get_data(), strict=True)


def int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,19}", raw):  # int() would take "1_0" and "١٢"
        raise BadRequest(f"query parameter '{name}' must be an integer", raw)
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest(f"query parameter '{name}' must be between {low} and {high}", value)
    return value
