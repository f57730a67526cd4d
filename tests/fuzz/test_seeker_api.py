"""Fuzz the seeker's REST API through its OpenAPI document."""

from __future__ import annotations

import pytest

from tests.fuzz.conftest import seeker_service
from tests.fuzz.fuzzing import CHECKS, FUZZ, aim, load

SEEKER = seeker_service()
schema = load(SEEKER)
# an event names the assignment it is about: h1's attempt 1 exists
BODIES = {"POST /api/v1/tasks/{task_id}/events": {"helper_id": "h1", "attempt": 1}}


@pytest.mark.fuzz
@schema.parametrize()
@FUZZ
def test_seeker_api(case):
    aim(case, SEEKER, BODIES)
    case.call_and_validate(headers=SEEKER.headers_for(case), checks=CHECKS)
