"""Fuzz the channel's REST API through its OpenAPI document."""

from __future__ import annotations

import pytest

from tests.fuzz.conftest import channel_service
from tests.fuzz.fuzzing import CHECKS, FUZZ, aim, load

CHANNEL = channel_service()
schema = load(CHANNEL)


@pytest.mark.fuzz
@schema.parametrize()
@FUZZ
def test_channel_api(case):
    aim(case, CHANNEL)
    case.call_and_validate(headers=CHANNEL.headers_for(case), checks=CHECKS)
