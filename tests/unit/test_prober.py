"""The prober: one round asks every helper that fell silent (missed a
heartbeat) for its status (an injected callable, no HTTP), refreshes what
answered and counts what did not."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from seeker.control.health import HelperHealth
from seeker.control.prober import GRACE, Prober
from serving.http import ApiError, Unreachable

GiB = 1024**3
SILENT = 21  # seconds: past a helper's heartbeat (15 s) and 5 s of slack
FRESH = {"cpus": 16, "memory_total": 64 * GiB, "gpus": [{"index": 0, "memory_free": GiB}]}


class FakeStatus:
    """Answers GET /api/v1/status per helper name: a dict, or raises an error."""

    def __init__(self, **answers):
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, helper: dict) -> dict:
        self.asked.append(helper["name"])
        answer = self.answers[helper["name"]]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def health(helpers, tasks, clock) -> HelperHealth:
    return HelperHealth(helpers, tasks, clock, purge_after=3, liveness=timedelta(seconds=45))


def prober(helpers, health, clock, kicks, status) -> Prober:
    return Prober(helpers, health, status, clock, kick=lambda: kicks.append(1), parallel=4)


def register(helpers, clock, name: str) -> None:
    reg = {
        "helper_id": f"id-{name}",
        "name": name,
        "url": f"http://{name}:7072",
        "resources": {"cpus": 8, "memory_total": 16 * GiB, "gpus": []},
    }
    helpers.register(reg, clock())


def test_answers_refresh_resources_and_reset_failures(helpers, health, clock, kicks):
    register(helpers, clock, "gpu-1")
    helpers.contact_failed("id-gpu-1", clock(), "refused")
    helpers.contact_failed("id-gpu-1", clock(), "refused")
    clock.advance(30)
    status = FakeStatus(**{"gpu-1": {"name": "gpu-1", "resources": FRESH, "running": []}})
    assert prober(helpers, health, clock, kicks, status).probe_all() == {"gpu-1": True}
    doc = helpers.get("id-gpu-1")
    assert doc["resources"] == FRESH
    assert doc["failures"] == 0
    assert doc["last_seen"] == doc["updated_at"] == clock()
    assert kicks == [1]


def test_non_answers_count_failures_and_purge_at_three(helpers, health, clock, kicks):
    register(helpers, clock, "down")
    register(helpers, clock, "refusing")
    register(helpers, clock, "up")
    status = FakeStatus(
        down=Unreachable("connection refused"),
        refusing=ApiError(401, "bad token"),
        up={"resources": FRESH},
    )
    probe = prober(helpers, health, clock, kicks, status)
    for failures in (1, 2):
        clock.advance(SILENT)
        assert probe.probe_all() == {"down": False, "refusing": False, "up": True}
        assert helpers.get("id-down")["failures"] == failures
        assert helpers.get("id-refusing")["failures"] == failures
    last = helpers.get("id-down")["last_failure"]
    assert last == {"at": clock(), "reason": "probe failed: connection refused"}
    assert helpers.get("id-refusing")["last_failure"]["reason"] == "probe failed: 401: bad token"
    clock.advance(SILENT)
    assert probe.probe_all() == {"down": False, "refusing": False, "up": True}
    assert [h["name"] for h in helpers.list()] == ["up"]
    clock.advance(SILENT)
    assert probe.probe_all() == {"up": True}
    assert status.asked.count("down") == 3


def test_a_purge_by_probe_requeues_the_helpers_work(helpers, tasks, health, clock, kicks):
    register(helpers, clock, "down")
    tasks.create("t1", {"image": "busybox"}, clock())
    tasks.assign(tasks.get("t1"), {"helper_id": "id-down", "name": "down"}, clock())
    probe = prober(helpers, health, clock, kicks, FakeStatus(down=Unreachable("refused")))
    for _ in range(3):
        clock.advance(SILENT)
        probe.probe_all()
    assert tasks.assignments_of("t1")[0]["state"] == "lost"
    assert tasks.get("t1")["state"] == "pending"


def test_kick_only_when_some_helper_answered(helpers, health, clock, kicks):
    register(helpers, clock, "down")
    status = FakeStatus(down=Unreachable("refused"))
    probe = prober(helpers, health, clock, kicks, status)
    clock.advance(SILENT)
    probe.probe_all()
    assert kicks == []
    register(helpers, clock, "up")
    status.answers["up"] = {"resources": FRESH}
    clock.advance(SILENT)
    probe.probe_all()
    assert kicks == [1]  # once per round, not per helper


def test_no_helpers_no_probes(helpers, health, clock, kicks):
    status = FakeStatus()
    assert prober(helpers, health, clock, kicks, status).probe_all() == {}
    assert status.asked == [] and kicks == []


def test_more_helpers_than_parallel_probes(helpers, health, clock, kicks):
    names = [f"h{n:02d}" for n in range(10)]
    for name in names:
        register(helpers, clock, name)
    status = FakeStatus(**{name: {"resources": FRESH} for name in names})
    clock.advance(SILENT)
    outcome = prober(helpers, health, clock, kicks, status).probe_all()
    assert outcome == dict.fromkeys(names, True)
    assert sorted(status.asked) == names


def test_an_unexpected_probe_error_counts_as_a_failed_contact(helpers, health, clock, kicks):
    register(helpers, clock, "garbled")
    register(helpers, clock, "up")
    not_json = requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0)
    status = FakeStatus(garbled=not_json, up={"resources": FRESH})
    clock.advance(30)
    outcome = prober(helpers, health, clock, kicks, status).probe_all()
    assert outcome == {"garbled": False, "up": True}
    assert helpers.get("id-garbled")["failures"] == 1
    assert helpers.get("id-up")["last_seen"] == clock()


def test_a_helper_heard_from_lately_is_not_probed(helpers, health, clock, kicks):
    register(helpers, clock, "beating")
    register(helpers, clock, "quiet")
    status = FakeStatus(beating={"resources": FRESH}, quiet={"resources": FRESH})
    probe = prober(helpers, health, clock, kicks, status)
    clock.advance(15)
    helpers.contact_ok("id-beating", clock())  # its heartbeat
    clock.advance(SILENT - 15)
    assert probe.probe_all() == {"quiet": True}
    assert status.asked == ["quiet"]


def test_in_a_large_fleet_only_helpers_that_missed_their_own_beat_are_read(
    helpers, tasks, health, clock, kicks
):
    """5,000 helpers beat every 100 s: the round reads those silent past
    100 s (and the few with a shorter interval of their own), not every
    helper not heard from for 20 s."""
    for n in range(4997):
        helpers.helpers.insert_one({"_id": f"h{n}", "name": f"h{n}", "heartbeat": 100.0})
    for name, beat in (("late", 100.0), ("own-15", 15.0), ("unknown", None)):
        register(helpers, clock, name)
        helpers.set_heartbeat(f"id-{name}", beat)
    clock.advance(30)
    helpers.seen([f"h{n}" for n in range(4997)], clock())  # all beat 30 s ago ...
    clock.advance(30)
    helpers.seen(["id-late"], clock() - timedelta(seconds=110))  # ... but late: 110 s ago
    assert health.heartbeat_interval() == 100.0
    read = []
    query = helpers.pushed_silent_since
    helpers.pushed_silent_since = lambda *args: read.extend(query(*args)) or read
    status = FakeStatus(**{n: {"name": n, "running": []} for n in ("late", "own-15", "unknown")})
    assert prober(helpers, health, clock, kicks, status).probe_all() == {
        "late": True,
        "own-15": True,
        "unknown": True,
    }
    assert sorted(h["name"] for h in read) == ["late", "own-15", "unknown"]


def test_a_fleet_told_intervals_as_it_grew_is_not_read_whole(helpers, health, clock, kicks):
    """Helpers that joined a growing fleet were told 60 to 100 s: none of
    them is read for being silent 30 s (past the 15 s minimum), only the
    one silent past its own interval."""
    for n in range(400):
        helpers.helpers.insert_one({"_id": f"h{n}", "name": f"h{n}", "heartbeat": 60.0 + n / 10})
    register(helpers, clock, "late")
    helpers.set_heartbeat("id-late", 98.0)
    clock.advance(30)
    helpers.seen([f"h{n}" for n in range(400)], clock())
    clock.advance(30)  # all silent for 30 s ...
    helpers.seen(["id-late"], clock() - timedelta(seconds=104))  # ... one past its 98 s
    read = helpers.pushed_silent_since(clock(), 15.0, GRACE)
    assert [h["name"] for h in read] == ["late"]
    status = FakeStatus(late={"name": "late", "running": []})
    assert prober(helpers, health, clock, kicks, status).probe_all() == {"late": True}
