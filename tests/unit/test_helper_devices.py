"""A helper refuses an assignment naming a GPU its runs already fill, as two
seekers placing on it at the same moment can send (helper/devices.py)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from test_executor import HELPER_ID, FakeRuntime, assignment, make, wait_done

from helper.devices import as_label, devices_of, from_label, overbooked
from helper.runs import DEVICES_LABEL, HELPER_LABEL, LABEL
from serving.errors import Busy

UUID0, UUID1 = "GPU-0000", "GPU-1111"


def gpu_task(task_id: str, gpus: float, uuids: list[str], indices: list[int] | None = None):
    return assignment(
        task_id,
        resources={"gpus": gpus},
        gpu_uuids=uuids,
        gpu_indices=indices if indices is not None else list(range(len(uuids))),
    )


def test_an_assignment_holds_each_of_its_gpus_whole_or_its_share_of_one():
    assert devices_of(gpu_task("t", 2, [UUID0, UUID1])) == {UUID0: 1.0, UUID1: 1.0}
    assert devices_of(gpu_task("t", 0.25, [UUID1], [1])) == {UUID1: 0.25}
    assert devices_of(gpu_task("t", 1, [], [3])) == {"3": 1.0}  # by index without uuids
    assert devices_of(assignment("t")) == {}


def test_shares_fill_a_gpu_up_to_one():
    quarters = [{UUID0: 0.25}] * 3
    assert overbooked(quarters, {UUID0: 0.25}) is None
    assert overbooked([*quarters, {UUID0: 0.25}], {UUID0: 0.25}) == UUID0
    assert overbooked([{UUID0: 0.1}, {UUID0: 0.2}], {UUID0: 0.7}) is None
    assert overbooked([{UUID0: 1.0}], {UUID1: 1.0}) is None


def test_a_second_run_on_a_taken_gpu_is_busy_and_the_gpu_free_again_after_it():
    runtime = FakeRuntime(block=True)
    ex, _ = make(runtime, slots=4)
    ex.submit(gpu_task("t1", 1, [UUID0]))
    with pytest.raises(Busy) as refused:
        ex.submit(gpu_task("t2", 1, [UUID0]))  # placed by another seeker at the same moment
    assert UUID0 in refused.value.detail
    ex.submit(gpu_task("t3", 1, [UUID1]))  # the other GPU is free
    runtime.release.set()
    wait_done(ex, "t1.1")
    wait_done(ex, "t3.1")
    ex.submit(gpu_task("t2", 1, [UUID0]))  # placed again once the first ended
    wait_done(ex, "t2.1")


def test_shares_of_one_gpu_run_side_by_side_until_it_is_full():
    runtime = FakeRuntime(block=True)
    ex, _ = make(runtime, slots=4)
    ex.submit(gpu_task("t1", 0.5, [UUID0]))
    ex.submit(gpu_task("t2", 0.5, [UUID0]))
    with pytest.raises(Busy):
        ex.submit(gpu_task("t3", 0.25, [UUID0]))
    runtime.release.set()
    for key in ("t1.1", "t2.1"):
        wait_done(ex, key)


def test_a_runs_container_names_its_gpus_and_none_without():
    runtime = FakeRuntime()
    ex, box = make(runtime, slots=2, declared_gpus=True)
    ex.submit(gpu_task("t1", 0.5, [UUID1], [1]))
    ex.submit(assignment("t2"))
    wait_done(ex, "t1.1")
    wait_done(ex, "t2.1")
    labels = {spec.labels[LABEL]: spec.labels for spec in runtime.specs}
    assert from_label(labels["t1.1"][DEVICES_LABEL]) == {UUID1: 0.5}
    assert DEVICES_LABEL not in labels["t2.1"]


@pytest.mark.parametrize(
    "label", ["", "not json", "[1]", '{"GPU-0": 2}', '{"GPU-0": true}', '{"GPU-0": "1"}']
)
def test_a_label_the_helper_did_not_write_holds_nothing(label):
    assert from_label(label or None) == {}


def test_the_label_round_trips():
    devices = {UUID0: 1.0, UUID1: 0.25}
    assert from_label(as_label(devices)) == devices


class FollowingRuntime(FakeRuntime):
    """Also follows each container an earlier process started, until that
    container is released."""

    def __init__(self):
        super().__init__()
        self.ends: dict[str, threading.Event] = {}
        self.followed = threading.Semaphore(0)

    def follow(self, container, spec, started):
        end = self.ends.setdefault(container.name, threading.Event())
        self.followed.release()
        assert end.wait(10), "test never released the adopted container"
        return self.outcome

    def end(self, *keys: str) -> None:
        for key in keys:
            self.ends.setdefault(f"seeker-{key}", threading.Event()).set()
            for t in threading.enumerate():
                if t.name == f"follow-{key}":
                    t.join(10)


def left_container(key: str, devices: dict[str, float]):
    """A container an earlier process of the helper started (as Docker lists it)."""
    labels = {LABEL: key, HELPER_LABEL: HELPER_ID}
    if devices:
        labels[DEVICES_LABEL] = as_label(devices)
    return SimpleNamespace(
        name=f"seeker-{key}", labels=labels, attrs={"Config": {"Image": "busybox:1.36"}}
    )


def test_a_restarted_helper_counts_the_gpus_of_the_runs_it_adopted():
    runtime = FollowingRuntime()
    ex, _ = make(runtime, slots=4)
    assert ex.adopt([left_container("old.1", {UUID0: 1.0})]) == ["old.1"]
    with pytest.raises(Busy) as refused:
        ex.submit(gpu_task("t1", 1, [UUID0]))  # the adopted run still holds it
    assert UUID0 in refused.value.detail
    ex.submit(gpu_task("t2", 1, [UUID1]))
    wait_done(ex, "t2.1")
    runtime.end("old.1")
    ex.submit(gpu_task("t1", 1, [UUID0]))  # free again
    wait_done(ex, "t1.1")


def test_an_adopted_run_past_the_slots_still_holds_its_gpus():
    runtime = FollowingRuntime()
    ex, _ = make(runtime, slots=2)
    left = [
        left_container("a.1", {}),
        left_container("b.1", {}),
        left_container("c.1", {UUID0: 0.5}),
    ]
    assert ex.adopt(left) == ["a.1", "b.1", "c.1"]  # c.1 past the 2 slots
    runtime.end("a.1", "b.1")  # a slot is free; c.1 runs on
    with pytest.raises(Busy) as refused:
        ex.submit(gpu_task("t1", 0.75, [UUID0]))
    assert UUID0 in refused.value.detail
    ex.submit(gpu_task("t2", 0.5, [UUID0]))  # what c.1 leaves of it
    wait_done(ex, "t2.1")
    runtime.end("c.1")
