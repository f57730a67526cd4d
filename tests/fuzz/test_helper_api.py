"""Fuzz the helper's REST API through its OpenAPI document."""

from __future__ import annotations

import pytest

from tests.fuzz.conftest import HELPER_ID, helper_service
from tests.fuzz.fuzzing import CHECKS, FUZZ, aim, load

HELPER = helper_service()
schema = load(HELPER)
# an assignment names the helper it is for: most name this one
BODIES = {"POST /api/v1/assignments": {"helper_id": HELPER_ID}}


@pytest.fixture(scope="module", autouse=True)
def _stop_containers():
    yield
    HELPER.close()  # the fake containers still running


@pytest.mark.fuzz
@schema.parametrize()
@FUZZ
def test_helper_api(case):
    aim(case, HELPER, BODIES)
    case.call_and_validate(headers=HELPER.headers_for(case), checks=CHECKS)
