"""A helper refuses an assignment naming a GPU its runs already fill, as two
seekers placing on it at the same moment can send (helper/devices.py)."""

from __future__ import annotations

import pytest
from test_executor import FakeRuntime, assignment, make, wait_done

from helper.devices import devices_of, overbooked
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
    wait_done("t1.1")
    wait_done("t3.1")
    ex.submit(gpu_task("t2", 1, [UUID0]))  # placed again once the first ended
    wait_done("t2.1")


def test_shares_of_one_gpu_run_side_by_side_until_it_is_full():
    runtime = FakeRuntime(block=True)
    ex, _ = make(runtime, slots=4)
    ex.submit(gpu_task("t1", 0.5, [UUID0]))
    ex.submit(gpu_task("t2", 0.5, [UUID0]))
    with pytest.raises(Busy):
        ex.submit(gpu_task("t3", 0.25, [UUID0]))
    runtime.release.set()
    for key in ("t1.1", "t2.1"):
        wait_done(key)
