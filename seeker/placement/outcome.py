"""What the results so far mean for a task: a pure decision over its
assignments, for each selection policy (first, quorum, all)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from channel.models import ResultStatus
from seeker.models import AssignmentState, TaskState

SUMMARY = ("helper_id", "helper_name", "attempt", "status", "exit_code", "output_digest")


@dataclass(frozen=True)
class Decision:
    state: TaskState | None  # None: the task goes on as it is
    wanted: int  # replicas the task should have had in all (running or ended)
    result: dict | None = None  # the canonical result, once decided
    error: str | None = None
    cancel: list[dict] = field(default_factory=list)  # live replicas to stop
    votes: dict[str, list[str]] = field(default_factory=dict)  # digest -> helper names


def decide(spec: dict, wanted: int, assignments: list[dict]) -> Decision:
    policy = spec.get("policy") or {}
    kind = policy.get("kind", "first")
    live = [a for a in assignments if a["state"] in AssignmentState.live()]
    done = sorted(
        (a for a in assignments if a["state"] == AssignmentState.FINISHED.value),
        key=lambda a: (str(a.get("finished_at")), a["attempt"]),
    )
    ok = [a for a in done if a.get("status") == ResultStatus.SUCCEEDED]
    votes = vote(ok)
    if kind == "quorum":
        decision = _quorum(policy, wanted, live, done, ok, votes)
    elif kind == "all":
        decision = _all(spec, live, done, ok)
    else:
        decision = _first(spec, policy, live, done, ok)
    if decision.state is None and not live and decision.wanted <= len(done):
        last = done[-1] if done else {}
        decision = Decision(
            TaskState.FAILED,
            len(done),
            summary(last) if done else None,
            error="nothing left to run",
        )
    if decision.state is None and not live:  # more to place, nothing running
        decision = Decision(TaskState.PENDING, decision.wanted, votes=decision.votes)
    return decision if decision.votes else Decision(**{**decision.__dict__, "votes": votes})


def ran_on(assignments: list[dict]) -> set[str]:
    """The helpers a replicated task has run on (or runs on): it goes to
    none of them again (a push that failed does not count)."""
    return {a["helper_id"] for a in assignments if a["state"] != AssignmentState.PUSH_FAILED.value}


def wants_a_new_helper(spec: dict, decision: Decision, assignments: list[dict]) -> bool:
    """A replicated task with nothing running that still wants a replica
    placed: it needs a helper it has not run on."""
    live = any(a["state"] in AssignmentState.live() for a in assignments)
    return spec.get("replicas", 1) > 1 and decision.state == TaskState.PENDING and not live


def no_helper_left(decision: Decision, ran: int) -> Decision:
    """The task wants one more replica, and every registered helper has run
    it (`ran` helpers have): it fails now rather than wait for a helper that
    may never come."""
    agreed = sorted((len(h) for h in decision.votes.values()), reverse=True)
    return Decision(
        TaskState.FAILED,
        decision.wanted,
        error=(
            f"wants one more replica, but every registered helper has run it ({ran} have; "
            "a replica never runs twice on one helper); successful replicas agreeing: "
            + (" / ".join(str(n) for n in agreed) or "none")
        ),
        votes=decision.votes,
    )


def vote(ok: list[dict]) -> dict[str, list[str]]:
    """Successful replicas grouped by output digest."""
    groups: dict[str, list[str]] = defaultdict(list)
    for a in ok:
        groups[a.get("output_digest") or ""].append(a.get("helper_name") or a["helper_id"])
    return dict(groups)


def _budget(spec: dict) -> int:
    return spec.get("replicas", 1) * spec.get("max_attempts", 1)


def _first(spec, policy, live, done, ok) -> Decision:
    """The first success wins; failures are replaced while attempts remain."""
    n, budget = spec.get("replicas", 1), _budget(spec)
    if ok:
        cancel = live if policy.get("cancel_rest", True) else []
        return Decision(TaskState.SUCCEEDED, len(done) + len(live), summary(ok[0]), cancel=cancel)
    wanted = min(len(done) + n, budget)
    if not live and len(done) >= budget:
        return Decision(
            TaskState.FAILED, len(done), summary(done[-1]), error=describe_failure(done[-1])
        )
    return Decision(None, max(wanted, len(done) + len(live)))


def _all(spec, live, done, ok) -> Decision:
    """Every replica must succeed; failed ones are re-run while attempts remain."""
    n, budget = spec.get("replicas", 1), _budget(spec)
    if len(ok) >= n:
        digests = {a.get("output_digest") for a in ok}
        error = None if len(digests) == 1 else f"replicas disagree: {len(digests)} outputs"
        return Decision(TaskState.SUCCEEDED, len(done), summary(ok[0]), error=error)
    failed = len(done) - len(ok)
    wanted = min(n + failed, budget)
    if not live and len(done) >= wanted:
        last = next(a for a in reversed(done) if a.get("status") != ResultStatus.SUCCEEDED)
        return Decision(
            TaskState.FAILED,
            len(done),
            summary(last),
            error=f"{len(ok)} of {n} replicas succeeded; last failure: {describe_failure(last)}",
        )
    return Decision(None, max(wanted, len(done) + len(live)))


def _quorum(policy, wanted, live, done, ok, votes) -> Decision:
    """The first output that `quorum` successful replicas agree on (BOINC's
    min_quorum); one more replica while agreement is out of reach."""
    k, most = policy.get("quorum") or 1, policy.get("max_replicas") or wanted
    for digest, helpers in votes.items():
        if len(helpers) >= k:
            winner = next(a for a in ok if a.get("output_digest") == digest)
            return Decision(
                TaskState.SUCCEEDED, len(done) + len(live), summary(winner), cancel=live
            )
    best = max((len(h) for h in votes.values()), default=0)
    to_come = wanted - len(done)  # running, or wanted and not placed yet
    if best + to_come >= k:
        return Decision(None, wanted)  # what runs (or will) can still agree
    if wanted < most:
        return Decision(None, wanted + 1)  # send one more
    if to_come > 0:
        return Decision(None, wanted)
    return Decision(
        TaskState.FAILED,
        wanted,
        error=(
            f"no quorum: {k} agreeing results needed, best was {best} of {len(done)} "
            f"(max {most} replicas)"
        ),
    )


def summary(a: dict) -> dict:
    """The canonical result as the task records it; `result_id` is the
    channel's id of that result (see channel.store.result_id)."""
    return {**{k: a.get(k) for k in SUMMARY}, "result_id": f"{a['task_id']}.{a['attempt']}"}


def describe_failure(a: dict) -> str:
    status = a.get("status")
    if a.get("error"):
        return f"{status}: {a['error']}"
    if status == ResultStatus.FAILED:
        return f"container exited with code {a.get('exit_code')}"
    return str(status)
