"""The bugs in known_bugs.py, each replayed by its request: a fixed one must
stay fixed; an open one is a strict xfail, so its fix shows here."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from tests.fuzz.conftest import channel_service, helper_service, seeker_service
from tests.fuzz.known_bugs import FIXED_BUGS, OPEN_BUGS

SERVICES = {"seeker": seeker_service, "channel": channel_service, "helper": helper_service}


@pytest.mark.fuzz
@pytest.mark.parametrize(
    "bug",
    [pytest.param(b, id=b.name) for b in FIXED_BUGS]
    + [
        pytest.param(
            b,
            id=b.name,
            marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=b.where),
        )
        for b in OPEN_BUGS
    ],
)
def test_known_bug_stays_fixed(bug):
    service = SERVICES[bug.service]()
    try:
        client = service.app.test_client()
        path, _, query = bug.path.partition("?")
        headers = service.headers(bug.method, path, bug.body, dict(parse_qsl(query)))
        kwargs: dict = {"method": bug.method, "headers": headers}
        if isinstance(bug.body, str):
            kwargs.update(data=bug.body, content_type="application/json")
        elif bug.body is not None:
            kwargs["json"] = bug.body
        resp = client.open(bug.path, **kwargs)
        assert resp.status_code == bug.expected, resp.get_data(as_text=True)[:300]
    finally:
        service.close()
