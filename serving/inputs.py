"""What a view reads from its request: the JSON body, validated strictly
against a model, and integer query parameters, each refused with a 4xx that
says what is wrong."""

from __future__ import annotations

import re
from typing import TypeVar

from flask import request
from pydantic import BaseModel

from serving.errors import BadRequest

M = TypeVar("M", bound=BaseModel)


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
