"""seeker.outcome.decide: what an ended assignment means for its task."""

from __future__ import annotations

from seeker.models import TaskState
from seeker.outcome import decide, describe_failure

DIGEST = "sha256:" + "a" * 64


def task(max_attempts=1) -> dict:
    return {"_id": "t1", "spec": {"image": "busybox", "max_attempts": max_attempts}}


def finished(attempt=1, status="succeeded", exit_code=0, **fields) -> dict:
    a = {
        "_id": f"t1.{attempt}",
        "task_id": "t1",
        "attempt": attempt,
        "helper_id": "h1",
        "helper_name": "gpu-1",
        "state": "finished",
        "status": status,
        "exit_code": exit_code,
        "output_digest": DIGEST,
    }
    a.update(fields)
    return a


def test_success_is_the_canonical_result():
    a = finished()
    d = decide(task(), [a], a)
    assert d.state is TaskState.SUCCEEDED
    assert d.error is None
    assert d.result == {
        "helper_id": "h1",
        "helper_name": "gpu-1",
        "attempt": 1,
        "status": "succeeded",
        "exit_code": 0,
        "output_digest": DIGEST,
    }


def test_failure_on_the_last_attempt_fails_the_task_naming_the_exit_code():
    a = finished(status="failed", exit_code=3)
    d = decide(task(max_attempts=1), [a], a)
    assert d.state is TaskState.FAILED
    assert d.error == "container exited with code 3"
    assert d.result["exit_code"] == 3 and d.result["status"] == "failed"


def test_failure_with_attempts_left_goes_back_to_pending():
    a = finished(status="failed", exit_code=1)
    d = decide(task(max_attempts=2), [a], a)
    assert d == type(d)(TaskState.PENDING)


def test_push_failures_do_not_use_up_attempts():
    pushes = [{"attempt": n, "state": "push_failed"} for n in (1, 2)]
    a = finished(attempt=3, status="failed", exit_code=1)
    assert decide(task(max_attempts=2), [*pushes, a], a).state is TaskState.PENDING


def test_second_failure_of_two_attempts_fails():
    first = finished(attempt=1, status="failed", exit_code=1)
    second = finished(attempt=2, status="timed_out", exit_code=None, error="stopped after 5s")
    d = decide(task(max_attempts=2), [first, second], second)
    assert d.state is TaskState.FAILED
    assert d.error == "timed_out: stopped after 5s"


def test_success_after_failures_succeeds():
    first = finished(attempt=1, status="failed", exit_code=1)
    second = finished(attempt=2)
    assert decide(task(max_attempts=2), [first, second], second).result["attempt"] == 2


def test_describe_failure():
    assert describe_failure({"status": "error", "error": "image not found"}) == (
        "error: image not found"
    )
    assert describe_failure({"status": "failed", "exit_code": 137}) == (
        "container exited with code 137"
    )
    assert describe_failure({"status": "cancelled"}) == "cancelled"
