"""serving.threadpool: daemon threads kept for the next call."""

from __future__ import annotations

import threading

from serving.threadpool import DaemonThreads


def ours(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix + "-")]


def test_a_thread_that_made_its_call_makes_the_next():
    pool = DaemonThreads("reuse")
    seen = []
    for i in range(5):
        pool.call(f"c{i}", lambda i=i: seen.append((i, threading.current_thread())))
        assert pool.wait(f"c{i}", 10)
    assert [i for i, _ in seen] == list(range(5))
    assert len({t for _, t in seen}) == 1  # one thread made all five
    assert pool.idle() == 1
    (t,) = ours("reuse")
    assert t.daemon and t.name == "reuse-idle"


def test_calls_made_at_once_each_get_a_thread_named_for_the_call():
    pool = DaemonThreads("at-once")
    go = threading.Event()
    names = []
    arrived = threading.Barrier(4)  # the three calls and this test

    def hold() -> None:
        names.append(threading.current_thread().name)
        arrived.wait(10)  # all three under way together: three threads
        go.wait(10)

    for i in range(3):
        pool.call(f"run{i}", hold)
    arrived.wait(10)
    assert sorted(names) == ["at-once-run0", "at-once-run1", "at-once-run2"]
    assert pool.wait("run0", 0.01) is False  # still under way
    go.set()
    assert all(pool.wait(f"run{i}", 10) for i in range(3))
    assert pool.idle() == 3


def test_a_failing_call_is_logged_and_its_thread_serves_on(caplog):
    pool = DaemonThreads("failing")
    pool.call("bad", lambda: 1 / 0)
    assert pool.wait("bad", 10)
    assert "failing-bad failed" in caplog.text and "ZeroDivisionError" in caplog.text
    done = []
    pool.call("good", done.append, 1)
    assert pool.wait("good", 10)
    assert done == [1] and len(ours("failing")) == 1


def test_an_idle_thread_ends_but_a_call_always_finds_one():
    pool = DaemonThreads("brief", idle_s=0.01)
    for i in range(50):  # calls made as idle threads time out
        done = threading.Event()
        pool.call(f"c{i}", done.set)
        assert done.wait(10), f"call {i} found no thread"
    first = ours("brief")
    for t in first:
        t.join(10)
    assert ours("brief") == [] and pool.idle() == 0
    done = threading.Event()
    pool.call("after", done.set)  # a new thread
    assert done.wait(10)


def test_wait_for_a_call_not_under_way_is_true_at_once():
    assert DaemonThreads("none").wait("never-made", 0) is True
