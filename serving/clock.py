"""Where time comes from. Decision code takes a `Clock` (a callable giving
timezone-aware UTC now) instead of reading the time itself, so tests drive
it without sleeping; `utc_now` is the default every service passes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
