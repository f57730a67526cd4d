"""Field types every service's schemas share."""

from __future__ import annotations

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
