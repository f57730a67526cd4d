"""seeker/control/dispatch_state.py: what a placement pass reads of the
views it holds."""

from __future__ import annotations

import pytest

from seeker.control.dispatch_state import all_full
from seeker.placement.views import HelperView


@pytest.mark.parametrize(
    ("helpers", "full"),
    [
        ([], False),  # no helper at all: nothing to wait for
        ([HelperView("h1", "a", slots=2, running=2, online=False)], False),  # none online
        ([HelperView("h1", "a", slots=2, running=2)], True),
        ([HelperView("h1", "a", slots=2, running=2, prefetch=1)], False),  # its queue has room
        ([HelperView("h1", "a", slots=2, running=3, prefetch=1)], True),
        (
            [
                HelperView("h1", "a", slots=1, running=0, online=False),  # room, but offline
                HelperView("h2", "b", slots=1, running=1),
            ],
            True,
        ),
        (
            [HelperView("h1", "a", slots=1, running=1), HelperView("h2", "b", slots=2, running=1)],
            False,
        ),
    ],
)
def test_all_full_when_every_online_helper_has_its_slots_and_queue_taken(helpers, full):
    assert all_full({h.helper_id: h for h in helpers}) is full
