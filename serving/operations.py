"""What a view declares of its operation, with @operation: what its app
cannot tell serving/openapi.py, which builds the OpenAPI document from the
app and these declarations. Its JSON body (a pydantic model; the view
receives it validated as `body`), its query parameters (a model, for the
document: the view reads them itself), its answers and its tag."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from spectree import Response

from serving.inputs import json_model

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
REF = "#/components/schemas/{model}"
ERROR = {"$ref": REF.format(model="Error")}
INVALID = {"$ref": REF.format(model="Invalid")}


@dataclass(frozen=True)
class Media:
    """An answer that is not JSON: its media type, the schema of its body,
    and the headers it carries."""

    media_type: str
    schema: dict = field(default_factory=lambda: {"type": "string"})
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


# An answer: a description alone (for an error: an `{"error", "detail"}`
# body), or a pair of what the body is (a model, a Media, None: no body) and
# its description.
Answer = str | tuple[type[BaseModel] | Media | None, str]


@dataclass(frozen=True)
class Operation:
    """What a view's entry in the document says beyond what the app tells."""

    answers: dict[int, Answer]
    body: type[BaseModel] | None = None
    raw_body: str | None = None
    query: type[BaseModel] | None = None
    tag: str | None = None
    params: dict[str, str] = field(default_factory=dict)  # path parameters' descriptions
    name: str | None = None  # the operationId, when the one made from the path would clash

    def spectree_args(self) -> dict:
        models = {
            f"HTTP_{status}": answer
            for status, answer in self.answers.items()
            if isinstance(answer, tuple) and is_model(answer[0])
        }
        return {
            "json": self.body,
            "query": self.query,
            "resp": Response(**models),
            "tags": [self.tag] if self.tag else [],
            "path_parameter_descriptions": self.params or None,
        }


def operation(
    answers: dict[int, Answer],
    *,
    body: type[BaseModel] | None = None,
    raw_body: str | None = None,
    query: type[BaseModel] | None = None,
    tag: str | None = None,
    params: dict[str, str] | None = None,
    name: str | None = None,
):
    """Declare a view's operation. With `body`, the view is called with
    `body=` the request's JSON object validated strictly against that model
    (400 when it is not a JSON object, 422 naming every bad field)."""
    declared = Operation(answers, body, raw_body, query, tag, params or {}, name)

    def mark(view):
        if body is not None:
            plain = view

            @functools.wraps(plain)
            def view(*args, **kwargs):
                return plain(*args, body=json_model(body), **kwargs)

        view.seeker_operation = declared
        return view

    return mark


def is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)
