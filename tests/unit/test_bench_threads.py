"""bench/threads.py: a service's CPU split by kind of thread."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from bench.threads import ENDED, by_thread, kind, split_line, thread_cpu


def test_a_kind_of_thread_is_its_name_without_numbers():
    assert kind("CP Server Thread-12") == "CP Server Thread-N"
    assert kind("push_3") == "push_N"
    assert kind("dispatch") == "dispatch"


def test_threads_of_a_kind_add_up_and_the_rest_of_the_process_is_counted_apart():
    before = {1: 1.0, 2: 2.0, 3: 0.5}
    after = {1: 1.5, 2: 2.25, 3: 0.5, 4: 0.25}  # 4 started meanwhile
    names = {1: "CP Server Thread-1", 2: "CP Server Thread-2", 3: "dispatch", 4: "push_0"}
    kinds = by_thread(before, after, names, total=1.5)
    assert kinds == {"CP Server Thread-N": 0.75, ENDED: 0.5, "push_N": 0.25, "dispatch": 0.0}
    assert list(kinds)[0] == "CP Server Thread-N"  # largest first


def test_without_names_there_is_no_split():
    assert by_thread({1: 1.0}, {1: 2.0}, {}, total=1.0) == {}


def test_the_line_shows_the_largest_kinds_per_task_and_sums_the_rest():
    kinds = {"a": 0.4, "b": 0.2, "c": 0.1, "d": 0.1}
    assert split_line("seeker", kinds, 100, shown=2) == (
        "seeker: a 4.00, b 2.00, 2 other kinds 2.00 ms"
    )


def test_the_line_leaves_out_kinds_that_used_next_to_nothing():
    kinds = {"a": 0.4, "idle": 0.0000001, "idle too": 0.0}
    assert split_line("channel", kinds, 100) == "channel: a 4.00 ms"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_thread_that_works_is_seen_to_use_cpu_and_one_that_ended_is_not_seen():
    pid, me = os.getpid(), threading.get_native_id()
    before = thread_cpu(pid)[me]
    n = 0
    while n < 300_000:  # some work of this thread's own
        n += 1
    assert thread_cpu(pid)[me] > before
    ended = {}
    t = threading.Thread(target=lambda: ended.update(id=threading.get_native_id()))
    t.start()
    t.join()
    # join() returns as the thread lets go of Python; the kernel may list
    # it a moment longer, until it has exited
    deadline = time.monotonic() + 5
    while ended["id"] in thread_cpu(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ended["id"] not in thread_cpu(pid)
