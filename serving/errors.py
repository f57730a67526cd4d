"""The project's own exceptions, one per HTTP answer, and the Flask handlers
that turn them (and everything else) into JSON bodies."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from pymongo.errors import ConnectionFailure
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiProblem(Exception):
    """Base class: an error with an HTTP status, a short message and a detail."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, detail: Any = None):
        super().__init__(message)
        self.message = message
        self.detail = detail

    def body(self) -> dict:
        return {"error": self.message, "detail": self.detail}


class BadRequest(ApiProblem):
    status = 400
    code = "bad_request"


class Unauthorized(ApiProblem):
    status = 401
    code = "unauthorized"


class Forbidden(ApiProblem):
    status = 403
    code = "forbidden"


class NotFound(ApiProblem):
    status = 404
    code = "not_found"


class Conflict(ApiProblem):
    status = 409
    code = "conflict"


class InvalidInput(ApiProblem):
    status = 422
    code = "invalid"


class Busy(ApiProblem):
    status = 429
    code = "busy"


class Unavailable(ApiProblem):
    status = 503
    code = "unavailable"


def invalid_input(exc: ValidationError) -> InvalidInput:
    """A pydantic error as a 422 that names every offending field."""
    problems = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        field = ".".join(str(p) for p in err["loc"]) or "(body)"
        problems.append({"field": field, "message": err["msg"]})
    fields = ", ".join(p["field"] for p in problems)
    return InvalidInput(f"invalid field(s): {fields}", problems)


def install_error_handlers(app) -> None:
    @app.errorhandler(ApiProblem)
    def _problem(exc: ApiProblem):
        return exc.body(), exc.status

    @app.errorhandler(ConnectionFailure)
    def _database_down(exc: ConnectionFailure):
        log.warning("database unreachable: %s", exc)
        problem = Unavailable("the database cannot be reached", "try again shortly")
        return problem.body(), problem.status

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        problem = invalid_input(exc)
        return problem.body(), problem.status

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        return {"error": exc.name.lower(), "detail": exc.description}, exc.code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return {"error": "internal error", "detail": type(exc).__name__}, 500
