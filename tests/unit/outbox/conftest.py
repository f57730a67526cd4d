"""The outbox's tests' handlers: one for results, one for events."""

from __future__ import annotations

import pytest

from .outbox_fakes import Handler


@pytest.fixture
def results() -> Handler:
    return Handler()


@pytest.fixture
def events() -> Handler:
    return Handler()
