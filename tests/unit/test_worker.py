"""The background worker: runs when woken, retries with backoff while a
step leaves work undone, survives a failing step, stops."""

from __future__ import annotations

import threading

from serving.worker import Worker


def test_a_step_that_leaves_work_undone_is_retried_without_a_wake():
    outcomes = [False, False, True]
    ran = []
    done = threading.Event()

    def step():
        ran.append(1)
        ok = outcomes.pop(0) if outcomes else True
        if ok:
            done.set()
        return ok

    worker = Worker("test", step, first_backoff=0.01, max_backoff=0.02).start()
    try:
        assert done.wait(5)
        assert len(ran) == 3  # two retries after backoff, then nothing until woken
    finally:
        worker.stop()
    assert not worker.alive()


def test_a_failing_step_does_not_end_the_worker_and_a_wake_runs_it_again():
    calls = []
    retried, woken = threading.Event(), threading.Event()

    def step():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        (retried if len(calls) == 2 else woken).set()
        return True

    worker = Worker("test", step, first_backoff=0.01).start()
    try:
        assert retried.wait(5)  # run again after the failure, without a wake
        assert not woken.wait(0.2)  # then asleep: nothing left to do
        worker.wake()
        assert woken.wait(5)
    finally:
        worker.stop()
