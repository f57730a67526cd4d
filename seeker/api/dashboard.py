"""The dashboard: one static page at the seeker's `/` and its files.

The page holds no data. Its script asks for the token, keeps it in the
browser tab's sessionStorage and reads the REST API with it, so every view
here is @public and serves only files."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, send_from_directory

from serving.access import public
from serving.operations import Media, operation

STATIC = Path(__file__).parent / "static"

# Scripts and styles from this server only; the page never runs inline code,
# so user-controlled text (task commands, logs) cannot become a script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

blueprint = Blueprint("dashboard", __name__)


@blueprint.get("/")
@operation({200: (Media("text/html"), "the page")}, tag="dashboard")
@public
def index() -> Response:
    """The dashboard's page"""
    return send_from_directory(STATIC, "index.html")


@blueprint.get("/dashboard/<path:filename>")
@operation({200: (Media("*/*"), "the file"), 404: "no such file"}, tag="dashboard")
@public
def asset(filename: str) -> Response:
    """The dashboard's script and style"""
    return send_from_directory(STATIC, filename)


@blueprint.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def register_dashboard(app: Flask) -> None:
    app.register_blueprint(blueprint)
