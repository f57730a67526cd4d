"""The lease under which one seeker of a group does the periodic work, and
its fence: taken and renewed with one conditional update each, taken over
after it expires, let go of before anyone else can take it, and a deposed
holder's late writes refused. Every backend, a fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from seeker.control.health import HelperHealth
from seeker.store.helpers import HelperStore
from seeker.store.leases import Lease
from seeker.store.tasks import TaskStore

SPEC = {"image": "busybox:1.36", "resources": {"cpus": 0, "memory": 0, "gpus": 0}}


@pytest.fixture
def pair(mongo_db, clock):
    """Two seekers' leases over one database."""
    return Lease(mongo_db, clock, holder="a"), Lease(mongo_db, clock, holder="b")


def test_the_first_takes_it_and_the_other_does_not(pair):
    a, b = pair
    assert a.try_acquire() and a.held() and a.epoch == 1
    assert not b.try_acquire() and not b.held()
    assert b.epoch == 1  # it learns the epoch all the same
    assert a.state()["holder"] == "a"


def test_the_holder_keeps_it_by_renewing(pair, clock):
    a, b = pair
    a.try_acquire()
    for _ in range(10):  # 20 s: longer than the lease, renewed every 2 s
        clock.advance(2)
        assert a.try_acquire()
        assert not b.try_acquire()
    assert a.epoch == 1


def test_a_holder_that_stops_renewing_stops_acting_before_another_takes_over(pair, clock):
    a, b = pair
    a.try_acquire()
    clock.advance(9)
    assert a.held()
    clock.advance(2)  # 11 s without a renewal: past its renew deadline (10 s)
    assert not a.held()
    assert not b.try_acquire()  # the lease (15 s) has not expired yet
    clock.advance(5)
    assert b.try_acquire() and b.held() and b.epoch == 2
    assert not a.try_acquire()  # its renewal is refused: the epoch moved on
    assert not a.held()


def test_a_released_lease_is_taken_at_once(pair, clock):
    a, b = pair
    a.try_acquire()
    a.release()
    assert not a.held()
    assert b.try_acquire() and b.epoch == 2


def test_a_job_runs_only_where_the_lease_is_held(pair, clock):
    a, b = pair
    ran = []
    job_a = a.run_if_held(lambda: ran.append("a"))
    job_b = b.run_if_held(lambda: ran.append("b"))
    a.try_acquire()
    b.try_acquire()
    job_a(), job_b()
    assert ran == ["a"]


def test_a_deposed_holder_cannot_mark_lost_the_work_placed_under_the_new_one(mongo_db, pair, clock):
    old, new = pair
    tasks, helpers = TaskStore(mongo_db), HelperStore(mongo_db, clock)
    helpers.register({"helper_id": "h", "name": "h", "url": "http://h:7072"}, clock())
    old.try_acquire()
    clock.advance(16)
    new.try_acquire()  # old was paused: new holds epoch 2
    tasks.create("t1", SPEC, clock())
    tasks.assign(tasks.get("t1"), {"helper_id": "h", "name": "h"}, clock(), epoch=new.epoch)
    clock.advance(60)  # h is silent past the liveness deadline
    stale = HelperHealth(helpers, tasks, clock, lease_epoch=lambda: old.epoch)
    assert old.epoch == 1
    assert stale.reap_silent() == 0  # the old holder's write is refused
    assert tasks.assignments_of("t1")[0]["state"] == "pushing"
    current = HelperHealth(helpers, tasks, clock, lease_epoch=lambda: new.epoch)
    assert current.reap_silent() == 1


def test_a_lease_not_yet_renewed_is_not_held(mongo_db, clock):
    fresh = Lease(mongo_db, clock, holder="c")
    assert not fresh.held()
    fresh.release()  # harmless


def test_times_are_those_of_kubernetes_controllers(mongo_db, clock):
    lease = Lease(mongo_db, clock)
    assert (lease.duration, lease.renew_deadline) == (
        timedelta(seconds=15),
        timedelta(seconds=10),
    )
