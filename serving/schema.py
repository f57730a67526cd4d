"""Field types every service's schemas share."""

from __future__ import annotations

import math
import re
import sys
from enum import Enum
from typing import Annotated

from pydantic import Field

INT64_MAX = 2**63 - 1

# What MongoDB can store as an integer: larger values would pass validation
# and then fail in the driver (a 500), so the schema refuses them (a 422).
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
Bytes = Annotated[int, Field(ge=0, le=INT64_MAX)]

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:

    class StrEnum(str, Enum):
        """States and statuses: each member is its value, also in str() and
        f-strings (enum.StrEnum from Python 3.11 on)."""

        def __str__(self) -> str:
            return self.value


UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_bytes(value: int | str) -> int:
    """4g, 512m, 1.5GiB, 1024 -> bytes (binary units)."""
    if isinstance(value, bool):
        raise ValueError("expected bytes or a size like '4g'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtKMGT]?)(?:i?[bB])?\s*", str(value))
    if not m:
        raise ValueError(f"cannot read {value!r} as a size: use bytes or e.g. '512m', '4g'")
    size = float(m.group(1)) * UNITS[m.group(2).lower()]
    if not math.isfinite(size) or size > INT64_MAX:
        raise ValueError(f"{value!r} is too large")
    return int(size)
