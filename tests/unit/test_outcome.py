"""seeker.placement.outcome.decide(spec, wanted, assignments): what the replicas' results
so far mean for their task, one test per rule of each policy, over literal
assignment lists."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from seeker.models import TaskState
from seeker.placement.outcome import decide, describe_failure, vote

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def ended(attempt: int, status="succeeded", digest=A, at=None, **fields) -> dict:
    """Replica `attempt` finished on helper h<attempt> (gpu-<attempt>), by
    default `attempt` seconds after T0."""
    a = {
        "_id": f"t1.{attempt}",
        "task_id": "t1",
        "attempt": attempt,
        "helper_id": f"h{attempt}",
        "helper_name": f"gpu-{attempt}",
        "state": "finished",
        "status": status,
        "exit_code": 0 if status == "succeeded" else 1,
        "output_digest": digest if status == "succeeded" else None,
        "finished_at": T0 + timedelta(seconds=attempt if at is None else at),
    }
    a.update(fields)
    return a


def failed(attempt: int, **fields) -> dict:
    return ended(attempt, "failed", **fields)


def live(attempt: int, state="running") -> dict:
    return {
        "_id": f"t1.{attempt}",
        "task_id": "t1",
        "attempt": attempt,
        "helper_id": f"h{attempt}",
        "helper_name": f"gpu-{attempt}",
        "state": state,
    }


def spec(replicas=1, max_attempts=1, **policy) -> dict:
    """A task spec as stored (`policy` as the model dumps it, or part of it)."""
    return {"image": "x", "replicas": replicas, "max_attempts": max_attempts, "policy": policy}


def quorum(replicas=3, k=2, most=5) -> dict:
    return spec(replicas, kind="quorum", quorum=k, max_replicas=most)


# --- one replica (policy first) ----------------------------------------------------


def test_success_is_the_canonical_result():
    d = decide(spec(), 1, [ended(1)])
    assert d.state is TaskState.SUCCEEDED
    assert d.error is None
    assert d.result == {
        "helper_id": "h1",
        "helper_name": "gpu-1",
        "attempt": 1,
        "status": "succeeded",
        "exit_code": 0,
        "output_digest": A,
        "result_id": "t1.1",
    }


def test_failure_on_the_last_attempt_fails_the_task_naming_the_exit_code():
    d = decide(spec(), 1, [failed(1, exit_code=3)])
    assert d.state is TaskState.FAILED
    assert d.error == "container exited with code 3"
    assert d.result["exit_code"] == 3 and d.result["status"] == "failed"


def test_push_failures_and_lost_runs_do_not_use_up_attempts():
    gone = [live(1, "push_failed"), live(2, "lost")]
    d = decide(spec(max_attempts=2), 1, [*gone, failed(3)])
    assert (d.state, d.wanted) == (TaskState.PENDING, 2)


def test_success_after_failures_succeeds():
    assert decide(spec(max_attempts=2), 2, [failed(1), ended(2)]).result["attempt"] == 2


# --- first ---------------------------------------------------------------------------


def test_first_the_earliest_success_by_finished_at_wins():
    d = decide(spec(replicas=2), 2, [ended(1, digest=A, at=20), ended(2, digest=B, at=10)])
    assert d.state is TaskState.SUCCEEDED
    assert (d.result["attempt"], d.result["output_digest"]) == (2, B)
    assert d.wanted == 2


def test_first_a_success_cancels_the_live_replicas():
    running = [live(2, "running"), live(3, "pulling")]
    d = decide(spec(replicas=3), 3, [ended(1), *running])
    assert d.state is TaskState.SUCCEEDED
    assert d.cancel == running
    assert d.wanted == 3


def test_first_keeps_the_others_running_when_cancel_rest_is_false():
    d = decide(spec(replicas=3, cancel_rest=False), 3, [ended(1), live(2), live(3)])
    assert d.state is TaskState.SUCCEEDED
    assert d.cancel == []


def test_first_a_failure_with_attempts_left_keeps_replicas_going():
    d = decide(spec(replicas=3, max_attempts=2), 3, [failed(1), live(2), live(3)])
    assert (d.state, d.wanted) == (None, 4)  # one more, beside the two that run
    assert d.cancel == [] and d.error is None


def test_first_the_exhausted_budget_fails_describing_the_last_failure():
    late = ended(2, "timed_out", exit_code=None, error="stopped after 5s")
    d = decide(spec(replicas=2), 2, [failed(1), late])  # budget 2 x 1
    assert d.state is TaskState.FAILED
    assert d.error == "timed_out: stopped after 5s"
    assert d.result["attempt"] == 2
    assert d.wanted == 2


def test_first_nothing_live_and_more_wanted_is_pending():
    d = decide(spec(replicas=2, max_attempts=2), 2, [failed(1), failed(2)])
    assert (d.state, d.wanted) == (TaskState.PENDING, 4)
    assert d.result is None


# --- quorum ----------------------------------------------------------------------------


def test_quorum_k_agreeing_digests_succeed_with_the_earliest_of_them():
    results = [ended(1, digest=A, at=1), ended(2, digest=B, at=2), ended(3, digest=A, at=3)]
    d = decide(quorum(k=2), 4, [*results, live(4)])
    assert d.state is TaskState.SUCCEEDED
    assert (d.result["attempt"], d.result["output_digest"]) == (1, A)
    assert d.cancel == [live(4)]
    assert d.wanted == 4


def test_quorum_waits_while_what_runs_can_still_agree():
    d = decide(quorum(k=2), 3, [ended(1, digest=A), ended(2, digest=B), live(3)])
    assert (d.state, d.wanted) == (None, 3)
    assert d.cancel == []


def test_quorum_out_of_reach_sends_one_more_replica():
    d = decide(quorum(k=3), 3, [ended(1, digest=A), ended(2, digest=B), live(3)])
    assert (d.state, d.wanted) == (None, 4)


def test_quorum_never_wants_more_than_max_replicas():
    results = [ended(1, digest=A), ended(2, digest=B), ended(3, digest=C)]
    d = decide(quorum(k=3, most=4), 4, [*results, live(4)])
    assert (d.state, d.wanted) == (None, 4)


def test_quorum_out_of_reach_with_nothing_live_is_pending_with_one_more():
    d = decide(quorum(k=2), 3, [ended(1, digest=A), ended(2, digest=B), ended(3, digest=C)])
    assert (d.state, d.wanted) == (TaskState.PENDING, 4)


def test_quorum_out_of_reach_at_max_with_nothing_live_fails_saying_so():
    results = [ended(1, digest=A), ended(2, digest=B), failed(3)]
    d = decide(quorum(k=2, most=3), 3, results)
    assert d.state is TaskState.FAILED
    assert d.error == "no quorum: 2 agreeing results needed, best was 1 of 3 (max 3 replicas)"
    assert d.wanted == 3


def test_quorum_counts_replicas_not_yet_placed_as_votes_to_come():
    d = decide(quorum(k=2, most=3), 3, [ended(1, digest=A), ended(2, digest=B)])
    assert (d.state, d.wanted) == (TaskState.PENDING, 3)  # the 3rd may still agree


def test_quorum_votes_group_helper_names_by_digest():
    results = [
        ended(1, digest=A),
        ended(2, digest=B),
        failed(3),
        ended(4, digest=A, helper_name=None),
        ended(5, digest=None),
    ]
    d = decide(quorum(replicas=5, k=3, most=6), 5, results)
    assert d.votes == {A: ["gpu-1", "h4"], B: ["gpu-2"], "": ["gpu-5"]}


def test_vote_keeps_the_order_of_first_appearance():
    assert list(vote([ended(1, digest=B), ended(2, digest=A), ended(3, digest=B)])) == [B, A]
    assert vote([]) == {}


# --- all ----------------------------------------------------------------------------------


def test_all_succeeds_when_every_replica_succeeded():
    d = decide(spec(replicas=3, kind="all"), 3, [ended(3, at=1), ended(1, at=2), ended(2, at=3)])
    assert d.state is TaskState.SUCCEEDED
    assert d.error is None
    assert d.result["attempt"] == 3
    assert d.votes == {A: ["gpu-3", "gpu-1", "gpu-2"]}


def test_all_waits_for_every_replica():
    d = decide(spec(replicas=3, kind="all"), 3, [ended(1), ended(2), live(3)])
    assert (d.state, d.wanted) == (None, 3)


def test_all_reruns_a_failed_replica_while_the_budget_lasts():
    d = decide(spec(replicas=2, max_attempts=2, kind="all"), 2, [ended(1), failed(2)])
    assert (d.state, d.wanted) == (TaskState.PENDING, 3)


def test_all_notes_disagreeing_successes_in_the_error():
    d = decide(spec(replicas=2, kind="all"), 2, [ended(1, digest=A), ended(2, digest=B)])
    assert d.state is TaskState.SUCCEEDED
    assert d.error == "replicas disagree: 2 outputs"
    assert d.votes == {A: ["gpu-1"], B: ["gpu-2"]}


def test_all_fails_naming_how_many_succeeded():
    d = decide(spec(replicas=3, kind="all"), 3, [ended(1), failed(2, exit_code=7), ended(3)])
    assert d.state is TaskState.FAILED
    assert d.error == "2 of 3 replicas succeeded; last failure: container exited with code 7"
    assert d.result["attempt"] == 2


# --- describing a failure ----------------------------------------------------------------


def test_describe_failure():
    assert describe_failure({"status": "error", "error": "image not found"}) == (
        "error: image not found"
    )
    assert describe_failure({"status": "failed", "exit_code": 137}) == (
        "container exited with code 137"
    )
    assert describe_failure({"status": "cancelled"}) == "cancelled"
