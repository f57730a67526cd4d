"""What the JSON client's tests share (tests/unit/test_http_client.py,
test_http_connections.py; their fixtures `clean_env` and `server` are in
tests/unit/conftest.py)."""

from __future__ import annotations

from flask import Flask, request

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def echo_app(name: str) -> Flask:
    app = Flask(__name__)

    @app.route("/echo", methods=["GET", "POST"])
    def echo():
        return {
            "server": name,
            "authorization": request.headers.get("Authorization"),
            "target": request.environ.get("REQUEST_URI"),
        }

    return app
