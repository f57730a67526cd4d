"""Secrets kept in files: a server's token and keys, a helper's credential,
each readable by its owner only."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


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
