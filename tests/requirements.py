"""Skip a test when a service it needs is missing, except under CI=true,
where a missing service is a failure."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(ok: bool, what: str) -> None:
    if ok:
        return
    if in_ci():
        pytest.fail(f"CI=true but {what}", pytrace=False)
    pytest.skip(what)
