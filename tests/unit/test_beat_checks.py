"""Which heartbeats of a busy pushed helper are checked against the
database (seeker/control/beat_checks.py): a beat that reports what the last
check found fine, with no end heard since, is not. Fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from seeker.control.beat_checks import MARGIN, RECHECK, BeatChecks


@pytest.fixture
def beats(clock) -> BeatChecks:
    checks = BeatChecks(clock)
    checks.listening = True
    return checks


def checked(beats: BeatChecks, helper_id: str, running: list[str], stop=()) -> None:
    started = beats.due(helper_id, running)
    assert started is not None
    beats.done(helper_id, started, running, list(stop))


def test_without_a_feed_every_beat_is_checked(clock):
    beats = BeatChecks(clock)
    checked(beats, "h", ["t1.1"])
    clock.advance(15)
    assert beats.due("h", ["t1.1"]) == clock()


def test_the_same_runs_found_fine_are_not_checked_again(beats, clock):
    assert beats.due("h", ["t1.1"]) == clock()  # never checked here
    checked(beats, "h", ["t1.1", "t2.1"])
    clock.advance(15)
    assert beats.due("h", ["t1.1", "t2.1"]) is None
    assert beats.due("h", ["t2.1"]) is None  # one of them ended: nothing to stop
    assert beats.due("h", ["t1.1", "t3.1"]) == clock()  # a run not checked yet
    assert beats.due("other", ["t1.1"]) == clock()  # checked for another helper only


def test_an_end_heard_since_the_check_makes_the_next_beat_check(beats, clock):
    checked(beats, "h", ["t1.1", "t2.1"])
    clock.advance(15)
    beats.ended("t9")  # of a task this helper does not run
    beats.ended("t1.2")  # another attempt of its task
    assert beats.due("h", ["t1.1", "t2.1"]) is None
    beats.ended("t2")  # its task ended (cancelled, decided)
    assert beats.due("h", ["t1.1", "t2.1"]) == clock()
    checked(beats, "h", ["t1.1", "t2.1"], stop=["t2.1"])
    clock.advance(15)
    assert beats.due("h", ["t1.1"]) is None
    assert beats.due("h", ["t1.1", "t2.1"]) == clock()  # still runs what it was told to stop
    beats.ended("t1.1")  # the run itself ended (lost: it may be revived)
    assert beats.due("h", ["t1.1"]) == clock()


def test_an_end_heard_just_before_the_check_still_counts(beats, clock):
    """Heard a little before the check started: its write may have come
    after the check's reads."""
    beats.ended("t1")
    clock.advance(MARGIN.total_seconds() - 1)
    checked(beats, "h", ["t1.1"])
    clock.advance(15)
    assert beats.due("h", ["t1.1"]) == clock()
    checked(beats, "h", ["t1.1"])
    clock.advance(15)
    assert beats.due("h", ["t1.1"]) is None  # heard before the last check's margin


def test_anything_may_have_ended_checks_every_helper_once(beats, clock):
    checked(beats, "a", ["t1.1"])
    checked(beats, "b", ["t2.1"])
    clock.advance(15)
    beats.ended(None)  # heard without change streams, or the stream reopened
    assert beats.due("a", ["t1.1"]) == clock()
    assert beats.due("b", ["t2.1"]) == clock()
    clock.advance(MARGIN.total_seconds() + 1)
    checked(beats, "a", ["t1.1"])
    clock.advance(15)
    assert beats.due("a", ["t1.1"]) is None
    assert beats.due("b", ["t2.1"]) == clock()


def test_a_beat_is_checked_at_least_every_recheck(beats, clock):
    checked(beats, "h", ["t1.1"])
    clock.advance(RECHECK.total_seconds() - 1)
    assert beats.due("h", ["t1.1"]) is None
    clock.advance(1)
    assert beats.due("h", ["t1.1"]) == clock()
    beats.done("h", clock(), ["t1.1"], [])
    clock.advance(-60)  # the clock went back: checked
    assert beats.due("h", ["t1.1"]) == clock()


def test_forget_checks_the_next_beat(beats, clock):
    checked(beats, "h", ["t1.1"])
    beats.forget("h")  # registered again
    assert beats.due("h", ["t1.1"]) == clock()


def test_ends_heard_are_kept_no_longer_than_they_can_matter(beats, clock):
    for n in range(1000):
        beats.ended(f"t{n}")
        clock.advance(1)
    kept = (RECHECK + MARGIN).total_seconds()
    assert len(beats._ended) == pytest.approx(kept, abs=2)
    beats.ended("t999")  # heard again: kept from now
    clock.advance(kept - 1)
    beats.ended("t-last")
    assert "t999" in beats._ended
    clock.advance(timedelta(seconds=2).total_seconds())
    beats.ended("t-later")
    assert "t999" not in beats._ended and "t-last" in beats._ended
