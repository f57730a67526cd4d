"""What each helper has free: its report less the reservations of its live
assignments, over literal documents."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from seeker.placement import select
from seeker.placement.capacity import (
    KeptViews,
    after_placing,
    as_utc,
    helper_views,
    is_online,
    online_until,
    view_of,
)
from seeker.placement.fleet import Fleet
from seeker.placement.pipeline import select_by_pipeline
from seeker.placement.views import GpuView, HelperView, TaskView

GiB = 1024**3
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
LIVENESS = timedelta(seconds=45)
SECOND = timedelta(seconds=1)


def doc(helper_id="h1", name="gpu-1", last_seen=NOW, **fields) -> dict:
    d = {
        "helper_id": helper_id,
        "name": name,
        "slots": 4,
        "resources": {
            "cpus": 8,
            "memory_total": 32 * GiB,
            "memory_available": 20 * GiB,  # not used: reservations are what count
            "gpus": [
                {"index": 0, "memory_free": 10 * GiB, "memory_total": 16 * GiB},
                {"index": 1, "memory_free": 16 * GiB, "memory_total": 16 * GiB},
                {"index": 2, "memory_free": 4 * GiB, "memory_total": 16 * GiB},
            ],
        },
        "labels": {"zone": "a"},
        "failures": 1,
        "last_seen": last_seen,
    }
    d.update(fields)
    return d


def test_view_of_a_helper_without_live_work():
    view = view_of(doc(), [], NOW, LIVENESS)
    assert view == HelperView(
        helper_id="h1",
        name="gpu-1",
        slots=4,
        running=0,
        cpus_total=8,
        cpus_free=8,
        memory_total=32 * GiB,
        memory_free=32 * GiB,
        gpus_free=(
            GpuView(0, 10 * GiB, 16 * GiB),
            GpuView(1, 16 * GiB, 16 * GiB),
            GpuView(2, 4 * GiB, 16 * GiB),
        ),
        gpus_total=3,
        labels={"zone": "a"},
        online=True,
        failures=1,
    )


def test_view_of_subtracts_cpus_memory_and_gpu_indices_reserved():
    reservations = [
        {"cpus": 2, "memory": 4 * GiB, "gpus": 1, "gpu_indices": [1]},
        {"cpus": 1.5, "memory": GiB, "gpus": 1, "gpu_indices": [0]},
        {},  # an assignment from before reservations: takes a slot, nothing else
    ]
    view = view_of(doc(), reservations, NOW, LIVENESS)
    assert view.running == 3
    assert view.cpus_free == pytest.approx(4.5) and view.cpus_total == 8
    assert view.memory_free == 27 * GiB and view.memory_total == 32 * GiB
    assert view.gpus_free == (GpuView(2, 4 * GiB, 16 * GiB),)
    assert view.gpus_total == 3


def test_view_of_a_bare_document():
    view = view_of({"helper_id": "x", "name": "bare"}, [], NOW, LIVENESS)
    assert view == HelperView("x", "bare", slots=1, online=False)


def test_view_of_a_gpu_without_memory_figures():
    d = doc(resources={"gpus": [{"index": 5}]})
    assert view_of(d, [], NOW, LIVENESS).gpus_free == (GpuView(5, 0, 0),)


@pytest.mark.parametrize(
    ("seen_ago", "online"),
    [(0, True), (44, True), (45, True), (46, False), (3600, False), (-5, True)],
)
def test_online_means_seen_within_the_liveness(seen_ago, online):
    d = doc(last_seen=NOW - timedelta(seconds=seen_ago))
    assert view_of(d, [], NOW, LIVENESS).online is online


@pytest.mark.parametrize(("seen_ago", "online"), [(45, True), (46, False)])
def test_a_naive_last_seen_is_read_as_utc(seen_ago, online):
    naive = (NOW - timedelta(seconds=seen_ago)).replace(tzinfo=None)
    assert view_of(doc(last_seen=naive), [], NOW, LIVENESS).online is online


def test_never_seen_is_offline():
    assert view_of(doc(last_seen=None), [], NOW, LIVENESS).online is False


def test_online_until_is_the_last_moment_a_helper_counts_as_online():
    """Worked out from the document alone, once, by KeptViews: online is
    `now <= online_until`, to the microsecond, as is_online() says."""
    d = doc(last_seen=NOW, heartbeat=30)  # two beats of 30 s: longer than the 45 s liveness
    until = online_until(d, LIVENESS)
    assert until == NOW + timedelta(seconds=60)
    assert is_online(d, until, LIVENESS)
    assert not is_online(d, until + timedelta(microseconds=1), LIVENESS)
    assert online_until(doc(last_seen=None), LIVENESS) is None


@pytest.mark.parametrize(
    ("poll", "online"),
    [
        ({"gone_at": NOW - 5 * SECOND}, False),  # its poll dropped
        ({"gone_at": NOW - 5 * SECOND, "connected_at": NOW - 9 * SECOND}, False),
        ({"gone_at": NOW - 5 * SECOND, "connected_at": NOW - SECOND}, True),  # polls again
        ({"connected_at": NOW - SECOND}, True),
    ],
)
def test_a_pulling_helper_whose_poll_dropped_is_offline_until_it_polls_again(poll, online):
    d = doc(last_seen=NOW, poll=poll)
    assert (online_until(d, LIVENESS) is not None) is online
    assert is_online(d, NOW, LIVENESS) is online


def test_helper_views_groups_live_assignments_by_helper():
    helpers = [doc("h1", "gpu-1"), doc("h2", "gpu-2"), doc("h3", "gpu-3")]
    live = [
        {"_id": "a.1", "helper_id": "h1", "reservation": {"cpus": 2, "gpu_indices": [0]}},
        {"_id": "b.1", "helper_id": "h1", "reservation": {"cpus": 1, "gpu_indices": [2]}},
        {"_id": "c.1", "helper_id": "h2"},  # no reservation recorded
        {"_id": "d.1", "helper_id": "gone", "reservation": {"cpus": 8}},  # no longer listed
    ]
    views = helper_views(helpers, live, NOW, LIVENESS)
    assert list(views) == ["h1", "h2", "h3"]
    assert (views["h1"].running, views["h1"].cpus_free) == (2, 5)
    assert [g.index for g in views["h1"].gpus_free] == [1]
    assert (views["h2"].running, views["h2"].cpus_free, len(views["h2"].gpus_free)) == (1, 8, 3)
    assert (views["h3"].running, views["h3"].cpus_free, len(views["h3"].gpus_free)) == (0, 8, 3)


def test_helper_views_are_a_fleet_that_select_ranks_as_the_pipeline_does():
    helpers = [doc("h1", "gpu-1"), doc("h2", "gpu-2", last_seen=None), doc("h3", "gpu-3")]
    live = [{"_id": "a.1", "helper_id": "h1", "reservation": {"cpus": 2, "gpu_indices": [1]}}]
    views = helper_views(helpers, live, NOW, LIVENESS)
    assert isinstance(views, Fleet)
    task = TaskView("t1", cpus=1, gpus=1)
    fast, plain = select(task, views), select_by_pipeline(task, list(views.values()))
    assert [c.helper.helper_id for c in fast.candidates] == ["h3", "h1"]
    assert [(c.helper, c.score) for c in fast.candidates] == [
        (c.helper, c.score) for c in plain.candidates
    ]
    assert fast.wait_reason() == plain.wait_reason() == "3 helpers: 1 offline"


def test_helper_views_of_nothing():
    assert helper_views([], [{"_id": "t.1", "helper_id": "h1"}], NOW, LIVENESS) == {}


def test_after_placing_takes_the_reservation_off_the_view():
    view = view_of(doc(), [], NOW, LIVENESS)
    placed = after_placing(view, {"cpus": 2, "memory": 8 * GiB, "gpus": 2, "gpu_indices": [0, 2]})
    assert (placed.running, placed.cpus_free, placed.memory_free) == (1, 6, 24 * GiB)
    assert placed.gpus_free == (GpuView(1, 16 * GiB, 16 * GiB),)
    assert (placed.cpus_total, placed.memory_total, placed.gpus_total) == (8, 32 * GiB, 3)
    assert view.running == 0 and len(view.gpus_free) == 3  # the original is unchanged


def test_after_placing_an_empty_reservation_takes_a_slot():
    view = view_of(doc(), [], NOW, LIVENESS)
    placed = after_placing(view, {})
    assert placed.running == 1
    assert (placed.cpus_free, placed.memory_free, placed.gpus_free) == (
        view.cpus_free,
        view.memory_free,
        view.gpus_free,
    )


def test_as_utc():
    naive = datetime(2024, 5, 1, 12, 0)
    assert as_utc(naive) == NOW and as_utc(naive).tzinfo is timezone.utc
    assert as_utc(NOW) is NOW
    other_zone = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert as_utc(other_zone) is other_zone  # aware: kept as is (and equal to NOW)
    assert as_utc(other_zone) == NOW
    assert as_utc(None) is None


def test_kept_views_build_again_only_the_helpers_that_changed():
    """KeptViews from one pass to the next: a row is kept while its helper's
    document is the same object, its live assignments the same ones and it
    is as online as it was; else built again. Each pass equals a fresh
    helper_views() of the same input."""
    kept = KeptViews()
    h4 = doc("h4", "gpu-4", last_seen=NOW - timedelta(seconds=20))
    docs = [doc("h1", "gpu-1"), doc("h2", "gpu-2"), doc("h3", "gpu-3"), h4]
    live = [{"_id": "t.1", "helper_id": "h3", "reservation": {"cpus": 2}}]
    first = kept.fleet(docs, live, NOW, LIVENESS)
    rows = {r.helper_id: r for r in first.rows()}
    assert first["h4"].online

    later = NOW + timedelta(seconds=30)  # h4 last seen 50 s ago by then: offline
    docs2 = [docs[0], doc("h2", "gpu-2", slots=8), docs[2], h4]  # h2 read again
    live2 = [*live, {"_id": "t2.1", "helper_id": "h1", "reservation": {"cpus": 1}}]
    second = kept.fleet(docs2, live2, later, LIVENESS)
    again = {r.helper_id: r for r in second.rows()}
    assert again["h3"] is rows["h3"]  # nothing changed
    assert again["h1"] is not rows["h1"] and second["h1"].running == 1  # a new assignment
    assert again["h2"] is not rows["h2"] and second["h2"].slots == 8  # its document, again
    assert again["h4"] is not rows["h4"] and not second["h4"].online  # went offline
    fresh = helper_views(docs2, live2, later, LIVENESS)
    assert [second[k] for k in second] == [fresh[k] for k in fresh]

    third = kept.fleet(docs2[:3], live2, later, LIVENESS)  # h4 removed
    assert list(third) == ["h1", "h2", "h3"]


def test_kept_views_keep_a_row_while_time_passes_within_the_liveness():
    """The same document, the same assignments: the row is kept as time
    passes, until the helper's deadline; a pass with another liveness works
    every deadline out again."""
    kept = KeptViews()
    docs = [doc("h1", "gpu-1", last_seen=NOW)]
    row = kept.fleet(docs, [], NOW, LIVENESS).rows()[0]
    assert kept.fleet(docs, [], NOW + LIVENESS, LIVENESS).rows()[0] is row
    late = kept.fleet(docs, [], NOW + LIVENESS + timedelta(microseconds=1), LIVENESS)
    assert late.rows()[0] is not row and not late["h1"].online
    longer = kept.fleet(docs, [], NOW + LIVENESS + timedelta(seconds=1), 2 * LIVENESS)
    assert longer["h1"].online


def test_kept_views_are_not_changed_by_what_a_pass_placed():
    """A pass sets a helper's view once it placed there (after_placing): the
    next pass starts from the helper as its document and assignments say."""
    kept = KeptViews()
    docs = [doc("h1", "gpu-1")]
    first = kept.fleet(docs, [], NOW, LIVENESS)
    first["h1"] = after_placing(first["h1"], {"cpus": 3})
    second = kept.fleet(docs, [], NOW, LIVENESS)
    assert second["h1"].cpus_free == 8 and second["h1"].running == 0
    assert second.rows()[0].cpus_free == 8
