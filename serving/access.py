"""What a request may do: the Flask hooks over serving.principals.

Every request but the open paths and @public views carries
`Authorization: Bearer <secret>`. The app's Authenticator turns the secret
into a Principal; each view says which roles may call it with @allow
(default: "user")."""

from __future__ import annotations

from flask import Flask, g, request

from serving.errors import Forbidden, Unauthorized
from serving.principals import USER, Authenticator, Principal

OPEN_PATHS = frozenset({"/healthz", "/api/v1/healthz"})


def public(view):
    """Mark a view as served without a token (a page that asks for the token
    itself, its static files). Never for a view that changes state or
    returns data."""
    view.seeker_public = True
    return view


def allow(*roles: str):
    """The roles that may call a view (without it: the user token only)."""

    def mark(view):
        view.seeker_roles = frozenset(roles)
        return view

    return mark


def principal() -> Principal:
    """The caller of the request being served (after the check)."""
    return g.seeker_principal


def bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("missing token", "send the header 'Authorization: Bearer <token>'")
    return given


def require_auth(app: Flask, auth: Authenticator, open_paths=OPEN_PATHS) -> None:
    """Check every request against `auth` and the view's allowed roles:
    401 for a missing or unknown secret, 403 for one that may not do this."""

    @app.before_request
    def _check():
        if request.path in open_paths or request.method == "OPTIONS":
            return None
        view = app.view_functions.get(request.endpoint or "")
        if getattr(view, "seeker_public", False):
            return None
        who = auth.authenticate(bearer())
        if who is None:
            raise Unauthorized("invalid token", "the token does not match this server's")
        allowed = getattr(view, "seeker_roles", frozenset({USER}))
        if view is not None and not who.roles & allowed:
            raise Forbidden(
                "this credential may not do this",
                f"{request.method} {request.path} needs a {' or '.join(sorted(allowed))} "
                f"credential; this one is a {', '.join(sorted(who.roles))} credential",
            )
        g.seeker_principal = who
        return None
