"""The Flask base every service's app factory starts from."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from serving.access import require_auth
from serving.errors import install_error_handlers
from serving.metrics import METRICS_PATH
from serving.openapi import Document, serve_openapi
from serving.operations import Media, operation
from serving.principals import Authenticator

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
    import_name: str,
    service: str,
    auth: Authenticator | str,
    config: dict | None = None,
    document: Document | None = None,
) -> Flask:
    """`auth`: who may call what (a plain string: the one user token).
    `document`: the app's OpenAPI document, served at GET /api/v1/openapi.json."""
    app = Flask(import_name, static_folder=None)  # a service serves its files explicitly
    app.json = IsoJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = DEFAULT_MAX_BODY
    app.config.update(config or {})
    install_error_handlers(app)
    require_auth(app, Authenticator.of(auth))

    health = {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean", "const": True},
            "service": {"type": "string", "const": service},
        },
        "required": ["ok", "service"],
    }

    @app.get("/healthz")
    @app.get("/api/v1/healthz")
    @operation({200: (health, "the service is up")}, tag="health")
    def healthz():
        """Health check"""
        return {"ok": True, "service": service}

    serve_openapi(app, document or Document(service, ""))
    return app


def serve_metrics(app: Flask, *collectors: Collector) -> CollectorRegistry:
    """Serve `collectors` in the Prometheus text format at GET /metrics, from
    a registry made for this app alone; behind the token like every other
    endpoint (only /healthz is open). Returns the registry, which is also
    `app.extensions["metrics"]`."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    app.extensions["metrics"] = registry

    @operation({200: (Media("text/plain"), "metrics in the Prometheus text format")}, tag="metrics")
    def metrics():
        """Prometheus metrics"""
        return app.response_class(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)

    app.add_url_rule(METRICS_PATH, "metrics", metrics, methods=["GET"])
    return registry
