"""What every fuzz test shares: how a service's document is loaded, the
checks each answer must pass, and the bounds that keep a run short and
reproducible."""

from __future__ import annotations

import os
import zlib

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from serving.openapi import OPENAPI_PATH, body_models
from tests.fuzz.conftest import Service
from tests.fuzz.known_bugs import BODY_MODELS, is_known

# No 5xx; every answer's status, media type and body as the document says;
# input the document calls invalid is refused with a 4xx.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

# Bounded and derandomized: the same cases on every run, so CI is reproducible.
# FUZZ_MAX_EXAMPLES=500 fuzzes deeper (still the same cases for the same number).
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_MAX_EXAMPLES", "40")),
    deadline=None,
    derandomize=os.environ.get("FUZZ_RANDOM", "") == "",
    database=None,
    suppress_health_check=list(HealthCheck),
)


def load(service: Service):
    """The service's own document, as it serves it; the token is sent by the tests."""
    app = service.app
    BODY_MODELS.update(body_models(app))
    app.wsgi_app = read_whole(app.wsgi_app)
    schema = schemathesis.openapi.from_wsgi(OPENAPI_PATH, app)
    schema.config.generation.update(with_security_parameters=False)

    @schema.hook
    def filter_failure(context, failure, case, response) -> bool:
        return not is_known(failure, case, response)

    return schema


def aim(case, service: Service, bodies: dict[str, dict] | None = None) -> None:
    """Point three of four valid cases at things that exist: an id in the
    path or the query becomes one of `service.known`, and the fields
    `bodies[operation]` name take those values (e.g. the helper id an
    assignment must carry). Invalid cases are left as generated."""
    if case.meta is None or case.meta.generation.mode.value != "positive":
        return
    for container in (case.path_parameters, case.query):
        for name, value in (container or {}).items():
            ids = service.known.get(name, list)()
            if ids and isinstance(value, str) and value and _chosen(value):
                container[name] = ids[zlib.crc32(value.encode()) % len(ids)]
    wanted = (bodies or {}).get(case.operation.label, {})
    if wanted and isinstance(case.body, dict) and _chosen(repr(sorted(case.body.items()))):
        for name, value in wanted.items():
            if type(case.body.get(name)) is type(value):
                case.body[name] = value


def _chosen(value: str) -> bool:
    return zlib.crc32(value.encode()) % 4 != 0


def read_whole(wsgi_app):
    """WSGI middleware: read each answer whole and close it. Schemathesis's
    WSGI transport reads a file-backed answer (the dashboard's files) without
    closing it, and the unclosed file would be a ResourceWarning."""

    def app(environ, start_response):
        answer = wsgi_app(environ, start_response)
        try:
            return [b"".join(answer)]
        finally:
            if hasattr(answer, "close"):
                answer.close()

    return app
