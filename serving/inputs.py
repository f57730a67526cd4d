"""What a view reads from its request: the JSON body, validated strictly
against a model, and integer query parameters, each refused with a 4xx that
says what is wrong."""

from __future__ import annotations

import re
from typing import TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from serving.errors import BadRequest

M = TypeVar("M", bound=BaseModel)


def json_model(model: type[M]) -> M:
    """The request's JSON object validated strictly against `model`: no
    "2" for 2 and no true for 1 (400 when it is not a JSON object at all,
    422 naming the fields that are wrong). The body is parsed once, by
    pydantic, whose error at the body's top level tells malformed JSON and
    JSON that is not an object apart; a parse by the json module first, for
    that, made a submit's body cost 34-50 µs instead of 25-26 µs
    (bench/findings.md 40)."""
    if not request.is_json:
        raise BadRequest("expected a JSON body", "send Content-Type: application/json")
    try:
        return model.model_validate_json(request.get_data(), strict=True)
    except ValidationError as exc:
        raise not_an_object(exc) or exc from None


def not_an_object(exc: ValidationError) -> BadRequest | None:
    """The 400 for a body that is not JSON, or is JSON but not an object;
    None when the body was an object and some of its fields are wrong."""
    errors = exc.errors(include_url=False, include_context=False)
    if len(errors) != 1 or errors[0]["loc"] != ():
        return None
    error = errors[0]
    if error["type"] == "json_invalid":
        return BadRequest("malformed JSON", "the request body is not valid JSON (in UTF-8)")
    if error["type"] == "model_type":
        return BadRequest("expected a JSON object", f"got a JSON {json_type(error['input'])}")
    return None


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


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
