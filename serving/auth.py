"""Who a request comes from, and what it may do.

Every request but the open paths and @public views carries
`Authorization: Bearer <secret>`. An Authenticator turns the secret into a
Principal (its roles, and for a helper or a receipt what it is bound to);
each view says which roles may call it with @allow (default: "user").
No secret is ever compared with `==` or written to a log."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, g, request

from serving.errors import Forbidden, Unauthorized

OPEN_PATHS = frozenset({"/healthz", "/api/v1/healthz"})
USER = "user"


@dataclass(frozen=True)
class Principal:
    roles: frozenset[str]
    subject: str | None = None  # the helper id of a helper credential, the receipt itself

    def has(self, role: str) -> bool:
        return role in self.roles


def secret_equal(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(given.encode(), expected.encode())


class Authenticator:
    """Static tokens, each granting some roles, and optional verifiers for
    secrets that are not known in advance (helper credentials, receipts).

    A verifier takes the presented secret and returns a Principal or None."""

    def __init__(
        self,
        tokens: dict[str, str | None] | None = None,
        verifiers: tuple[Callable[[str], Principal | None], ...] = (),
    ):
        self._tokens: list[tuple[str, str]] = [(r, t) for r, t in (tokens or {}).items() if t]
        self._verifiers = verifiers

    @classmethod
    def of(cls, auth: Authenticator | str) -> Authenticator:
        """A plain string is the single user token of a simple setup."""
        return auth if isinstance(auth, Authenticator) else cls({USER: auth})

    def authenticate(self, given: str) -> Principal | None:
        # every token is compared, so the time taken does not say which matched
        roles = frozenset(role for role, token in self._tokens if secret_equal(given, token))
        if roles:
            return Principal(roles)
        for verify in self._verifiers:
            principal = verify(given)
            if principal is not None:
                return principal
        return None


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


def fingerprint(secret: str) -> str:
    """A short, one-way name for a secret that may go into a log line."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def read_secret(path: Path) -> str | None:
    """A secret kept in a file (None: no file, or an empty one)."""
    try:
        return Path(path).read_text().strip() or None
    except FileNotFoundError:
        return None


def write_secret(path: Path, secret: str) -> None:
    """Keep a secret in a file readable by this user only (mode 0600),
    written whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.replace(part, path)


def resolve_secret(given: str | None, data_dir: Path, name: str = "token") -> tuple[str, bool]:
    """The secret a server uses: the one given, else the one kept in its data
    directory under `name`, else a new random one written there (mode 0600).

    Returns the secret and whether it was generated now."""
    if given:
        return given, False
    path = Path(data_dir) / name
    kept = read_secret(path)
    if kept:
        return kept, False
    new = secrets.token_urlsafe(32)
    write_secret(path, new)
    return new, True


def resolve_token(token: str | None, data_dir: Path) -> tuple[str, bool]:
    return resolve_secret(token, data_dir, "token")
