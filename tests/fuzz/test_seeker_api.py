"""Fuzz the seeker's REST API through its OpenAPI document."""

from __future__ import annotations

import re

import pytest

from seeker.control.workflows import MAX_ARRAY
from tests.fuzz.conftest import seeker_service
from tests.fuzz.fuzzing import CHECKS, FUZZ, aim, load

SEEKER = seeker_service()
schema = load(SEEKER)
# an event names the assignment it is about: h1's attempt 1 exists
BODIES = {"POST /api/v1/tasks/{task_id}/events": {"helper_id": "h1", "attempt": 1}}
# the most tasks a fuzzed array makes: the document allows 10,000, and every
# task stays in the store, where each array's status and each task listing
# scans them all (mongomock has no indexes: 53% and 24% of a run's time
# with arrays as large as generated). A large array is tests/integration's.
MOST_TASKS = 20


def small_array(case) -> None:
    """An array submission of more than MOST_TASKS tasks, and at most
    MAX_ARRAY (more is refused, and stays so), asks for fewer."""
    body = case.body
    if case.operation.label != "POST /api/v1/arrays" or not isinstance(body, dict):
        return
    size = body.get("array")
    if isinstance(size, int) and not isinstance(size, bool) and MOST_TASKS < size <= MAX_ARRAY:
        body["array"] = size % MOST_TASKS + 1
    elif isinstance(size, str) and re.fullmatch(r"[0-9]{1,9}-[0-9]{1,9}", size):
        first, last = (int(n) for n in size.split("-"))
        if MOST_TASKS <= last - first < MAX_ARRAY:
            body["array"] = f"{first}-{first + (last - first) % MOST_TASKS}"


@pytest.mark.fuzz
@schema.parametrize()
@FUZZ
def test_seeker_api(case):
    aim(case, SEEKER, BODIES)
    small_array(case)
    case.call_and_validate(headers=SEEKER.headers_for(case), checks=CHECKS)
