"""Bearer-token checks and where a server's token comes from."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from flask import Flask, request

from serving.errors import Unauthorized

OPEN_PATHS = frozenset({"/healthz", "/api/v1/healthz"})


def public(view):
    """Mark a view as served without a token (a page that asks for the token
    itself, its static files). Never for a view that changes state or
    returns data."""
    view.seeker_public = True
    return view


def require_token(app: Flask, token: str, open_paths=OPEN_PATHS) -> None:
    """Every request but the open paths and @public views must carry
    `Authorization: Bearer <token>`."""
    expected = token.encode()

    @app.before_request
    def _check_token():
        if request.path in open_paths or request.method == "OPTIONS":
            return None
        view = app.view_functions.get(request.endpoint or "")
        if getattr(view, "seeker_public", False):
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise Unauthorized("missing token", "send the header 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(given.strip().encode(), expected):
            raise Unauthorized("invalid token", "the token does not match this server's")
        return None


def resolve_token(token: str | None, data_dir: Path) -> tuple[str, bool]:
    """The token a server uses: the one given, else the one kept in its data
    directory, else a new random one written there (mode 0600).

    Returns the token and whether it was generated now."""
    if token:
        return token, False
    path = Path(data_dir) / "token"
    if path.exists():
        kept = path.read_text().strip()
        if kept:
            return kept, False
    path.parent.mkdir(parents=True, exist_ok=True)
    new = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new + "\n")
    return new, True
