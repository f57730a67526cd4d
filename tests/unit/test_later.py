"""serving.later: calls made later on one thread, each cancellable by key."""

from __future__ import annotations

import threading

from serving.later import Later


def test_calls_are_made_in_order_all_on_one_thread():
    later = Later("test-later")
    made: list[tuple[int, str]] = []
    done = threading.Event()

    def record(i: int) -> None:
        made.append((i, threading.current_thread().name))
        if len(made) == 20:
            done.set()

    for i in range(20):
        later.call(f"k{i}", 0.001 * i, record, i)
    assert done.wait(10)
    assert [i for i, _ in made] == list(range(20))
    assert {name for _, name in made} == {"test-later"}
    assert later.pending() == 0


def test_a_cancelled_call_is_not_made():
    later = Later("test-later")
    made = []
    later.call("k", 60, made.append, 1)
    assert later.pending() == 1
    assert later.cancel("k") is True
    assert later.cancel("k") is False  # once
    assert later.pending() == 0
    assert made == []


def test_a_call_made_already_cannot_be_cancelled():
    later = Later("test-later")
    done = threading.Event()
    later.call("k", 0, done.set)
    assert done.wait(10)
    assert later.cancel("k") is False


def test_a_later_call_is_made_after_an_earlier_one_though_entered_first():
    later = Later("test-later")
    made: list[str] = []
    done = threading.Event()
    later.call("slow", 0.2, lambda: (made.append("slow"), done.set()))
    later.call("quick", 0, made.append, "quick")  # wakes the thread from its wait
    assert done.wait(10)
    assert made == ["quick", "slow"]


def test_a_call_under_the_same_key_replaces_the_first():
    later = Later("test-later")
    made: list[int] = []
    done = threading.Event()
    later.call("k", 0.05, made.append, 1)
    later.call("k", 0.1, lambda: (made.append(2), done.set()))  # the first would come first
    assert done.wait(10)
    assert made == [2] and later.pending() == 0


def test_a_call_that_fails_does_not_stop_the_next(caplog):
    later = Later("test-later")
    done = threading.Event()

    def fail() -> None:
        raise RuntimeError("boom")

    later.call("bad", 0, fail)
    later.call("good", 0.01, done.set)
    assert done.wait(10)
    assert "bad failed" in caplog.text


def test_a_call_made_while_it_is_replaced_leaves_the_new_one_cancellable():
    """The first call fires just as a second is entered under its key (the
    scheduler took it off its queue, the second replaced it here): the
    second stays known, and cancellable."""
    later = Later("test-later")
    made = []
    later.call("k", 60, made.append, 1)  # number 0
    later.call("k", 60, made.append, 2)  # number 1: replaces it
    later._fire("k", 0, made.append, (1,))  # the first, firing late
    assert made == [1]
    assert later.pending() == 1
    assert later.cancel("k") is True
