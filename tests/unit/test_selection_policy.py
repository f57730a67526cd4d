"""TaskSpec.policy (SelectionPolicy), replicas and min_helpers: defaults that
fill in from the replica count, and the combinations refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from seeker.models import MAX_REPLICAS, SelectionPolicy, TaskSpec


def quorum_spec(replicas: int, **policy) -> TaskSpec:
    return TaskSpec(image="busybox", replicas=replicas, policy={"kind": "quorum", **policy})


def test_selection_policy_defaults():
    p = SelectionPolicy()
    assert (p.kind, p.quorum, p.max_replicas, p.cancel_rest) == ("first", None, None, True)


def test_task_spec_defaults_to_one_replica_first_success_and_no_minimum():
    spec = TaskSpec(image="busybox")
    assert (spec.replicas, spec.min_helpers) == (1, 0)
    assert spec.policy == SelectionPolicy()
    assert spec.model_dump(mode="json")["policy"] == {
        "kind": "first",
        "quorum": None,
        "max_replicas": None,
        "cancel_rest": True,
    }


@pytest.mark.parametrize(("replicas", "majority"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_quorum_defaults_to_a_majority(replicas, majority):
    assert quorum_spec(replicas).policy.quorum == majority


@pytest.mark.parametrize(("replicas", "most"), [(1, 3), (3, 5), (30, 32), (31, 32), (32, 32)])
def test_max_replicas_defaults_to_two_more_capped_at_32(replicas, most):
    assert MAX_REPLICAS == 32
    assert quorum_spec(replicas).policy.max_replicas == most


def test_explicit_quorum_and_max_replicas_are_kept_and_stored():
    spec = quorum_spec(4, quorum=4, max_replicas=9)
    assert (spec.policy.quorum, spec.policy.max_replicas) == (4, 9)
    stored = spec.model_dump(mode="json")["policy"]
    assert (stored["kind"], stored["quorum"], stored["max_replicas"]) == ("quorum", 4, 9)


def test_other_policies_leave_quorum_unset():
    spec = TaskSpec(image="busybox", replicas=3, policy={"kind": "all"})
    assert (spec.policy.quorum, spec.policy.max_replicas) == (None, None)


def test_a_quorum_above_replicas_is_refused():
    with pytest.raises(ValidationError, match=r"policy.quorum \(4\) exceeds replicas \(3\)"):
        quorum_spec(3, quorum=4)


def test_max_replicas_below_replicas_is_refused():
    with pytest.raises(ValidationError, match="max_replicas must be at least replicas"):
        quorum_spec(3, max_replicas=2)


def test_min_helpers_above_replicas_is_refused():
    with pytest.raises(ValidationError, match=r"min_helpers \(3\) exceeds replicas \(2\)"):
        TaskSpec(image="busybox", replicas=2, min_helpers=3)
    assert TaskSpec(image="busybox", replicas=2, min_helpers=2).min_helpers == 2


@pytest.mark.parametrize(
    "policy",
    [
        {"kind": "majority"},
        {"kind": "quorum", "quorum": 0},
        {"kind": "quorum", "max_replicas": 33},
        {"kind": "first", "keep": True},
    ],
)
def test_bad_policies_are_refused(policy):
    with pytest.raises(ValidationError):
        TaskSpec(image="busybox", replicas=2, policy=policy)
