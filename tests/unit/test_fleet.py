"""Fleet and select_in_fleet(): the fast path of select() makes the choice
that the plain pipeline (select_by_pipeline) makes, over random fleets."""

from __future__ import annotations

import random

import pytest
from scheduler_views import GiB, gpu, gpus, helper, task

from helper.images import normalised_images
from seeker.placement import select
from seeker.placement.capacity import after_placing
from seeker.placement.fast_path import handles, select_in_fleet
from seeker.placement.fleet import Fleet
from seeker.placement.pipeline import (
    FILTERS,
    NO_FREE_SLOT,
    NOT_ENOUGH_GPUS,
    OFFLINE,
    SCORERS,
    select_by_pipeline,
)
from seeker.placement.ranking import Ranking
from seeker.placement.views import GpuView, HelperView, TaskView

ZONES = ("a", "b", "c")
IMAGES = ("seeker-demo:latest", "seeker-demo", "registry.example.com/team/x:1", "busybox")
# what helpers report having, normalised: some have a task's image, some another
HAVE = tuple(
    frozenset(normalised_images(refs))
    for refs in (
        (),
        (),
        ("seeker-demo:latest",),
        ("docker.io/library/busybox:latest", "registry.example.com/team/x:1"),
        ("busybox:1.36", "seeker-demo:other"),
    )
)
PATTERNS = ((), (), (), ("registry.example.com/*",), ("seeker-demo:*", "busybox:*"))
MOUNT_DIRS = ((), (), ("/data",), ("/data/a", "/srv"))


def random_helper(rng: random.Random, i: int) -> HelperView:
    """Random, and often the same as another one (ties), sometimes odd: no
    slots, no CPU figures, more free than total, a name used twice; some
    prefetch, some of those with tasks waiting in their queue."""
    slots = rng.choice((0, 1, 1, 2, 4))
    prefetch = rng.choice((0, 0, 0, 1, 2))
    running = rng.randint(0, slots + prefetch + 1)
    cpus = rng.choice((0, 4, 8, 8.0, 16))
    memory = rng.choice((0, 8, 16, 16)) * GiB
    gpu_list: tuple[GpuView, ...] = ()
    if rng.random() < 0.4:
        size = rng.choice((0, 16, 16, 24)) * GiB
        n = rng.choice((1, 2, 4))
        gpu_list = tuple(random_gpu(rng, g, size) for g in range(n))
    return HelperView(
        helper_id=f"h{i}",
        name=f"helper-{i}" if rng.random() > 0.02 else "twin",
        slots=slots,
        running=running,
        prefetch=prefetch,
        cpus_total=cpus,
        cpus_free=cpus - rng.choice((0, 0, 1, 2, 4, -1)),
        memory_total=memory,
        memory_free=memory - rng.choice((0, 0, 4, 8)) * GiB,
        gpus_free=gpu_list,
        gpus_total=len(gpu_list) + rng.choice((0, 0, 1)),
        labels=rng.choice(({}, {"zone": rng.choice(ZONES)}, {"zone": "a", "tier": "gold"})),
        online=rng.random() > 0.1,
        failures=rng.choice((0, 0, 1, 3)),
        allowed_images=rng.choice(PATTERNS),
        allowed_mounts=rng.choice(MOUNT_DIRS),
        images=rng.choice(HAVE),
    )


def random_gpu(rng: random.Random, index: int, size: int) -> GpuView:
    """Often whole and free, sometimes partly taken by shares of other tasks
    (which whole-GPU tasks cannot have), with memory reserved by them."""
    share_free = rng.choice((1.0, 1.0, 1.0, 0.75, 0.5, 0.25))
    return GpuView(
        index,
        rng.choice((0, size // 2, size)),
        size,
        uuid=rng.choice((f"GPU-{index}", "")),
        name="NVIDIA A100-SXM4-80GB",
        share_free=share_free,
        memory_reserved=0 if share_free == 1.0 else rng.choice((0, size // 4, size)),
    )


def random_task(rng: random.Random, i: int, ids: list[str]) -> TaskView:
    n_gpus = rng.choice((0, 0, 0, 1, 2))
    return TaskView(
        task_id=f"task-{i}",
        cpus=rng.choice((0, 0, 1, 2, 4.5)),
        memory=rng.choice((0, 0, 4, 8)) * GiB,
        gpus=n_gpus,
        gpu_memory=rng.choice((0, 8, 16)) * GiB if n_gpus else 0,
        constraints=rng.choice(
            ({}, {}, {}, {"zone": rng.choice(ZONES)}, {"zone": "a", "tier": "gold"})
        ),
        placement=rng.choice(("spread", "spread", "binpack")),
        running_on=frozenset(rng.sample(ids, min(len(ids), rng.choice((0, 0, 1, 3))))),
        failed_on=frozenset(rng.sample(ids, min(len(ids), rng.choice((0, 0, 1, 2))))),
        image=rng.choice(IMAGES),
        mounts=rng.choice(((), (), ("/data/a/x",), ("/srv", "/etc"))),
        may_wait=rng.random() < 0.3,
    )


def ranking(selection) -> list[tuple[str, float, dict]]:
    return [(c.helper.helper_id, c.score, c.scores) for c in selection.candidates]


def assert_same(fast, reference) -> None:
    assert ranking(fast) == ranking(reference)  # the same scores, to the last bit
    assert fast.rejected == reference.rejected
    assert fast.wait_reason() == reference.wait_reason()
    assert fast.explain() == reference.explain()


@pytest.mark.parametrize("seed", range(40))
def test_the_fleet_chooses_as_the_pipeline_does_over_random_fleets(seed):
    rng = random.Random(seed)
    helpers = [random_helper(rng, i) for i in range(rng.choice((1, 5, 30, 200)))]
    ids = [h.helper_id for h in helpers]
    fleet = Fleet(helpers)
    for i in range(15):
        t = random_task(rng, i, ids)
        assert handles(t, FILTERS, SCORERS)
        fast = select_in_fleet(t, fleet)
        reference = select_by_pipeline(t, helpers)
        first = next(iter(fast.candidates), None)  # what the dispatcher reads first
        assert first == next(iter(reference.candidates), None)
        assert len(fast.candidates) == len(reference.candidates)
        assert_same(fast, reference)


def test_the_random_fleets_score_helpers_with_and_without_the_task_image():
    rng = random.Random(0)
    helpers = [random_helper(rng, i) for i in range(200)]
    seen = set()
    for i in range(15):
        for c in select(random_task(rng, i, []), Fleet(helpers)).candidates:
            seen.add(c.scores["prefer_image_present"])
    assert seen == {0.0, 1.0}


@pytest.mark.parametrize("seed", range(10))
def test_the_fleet_follows_the_views_the_dispatcher_replaces(seed):
    rng = random.Random(seed)
    helpers = [random_helper(rng, i) for i in range(50)]
    fleet = Fleet(helpers)
    for i in range(10):
        t = random_task(rng, i, list(fleet))
        chosen = next(iter(select(t, fleet).candidates), None)
        assert_same(select(t, fleet), select_by_pipeline(t, list(fleet.values())))
        if chosen is None:
            continue
        view = chosen.helper
        reservation = {"cpus": t.cpus, "memory": t.memory, "gpu_indices": []}
        fleet[view.helper_id] = after_placing(view, reservation)
        if i % 3 == 0:
            fleet.pop(rng.choice(list(fleet)))


def test_a_fleet_is_a_mapping_of_views_in_order():
    a, b, c = helper("a"), helper("b"), helper("c")
    fleet = Fleet([a, b, c])
    assert list(fleet) == ["id-a", "id-b", "id-c"] and list(fleet.values()) == [a, b, c]
    assert fleet == {"id-a": a, "id-b": b, "id-c": c}
    full_b = helper("b", slots=1, running=1)
    fleet["id-b"] = full_b  # keeps its place
    assert list(fleet.values()) == [a, full_b, c]
    assert fleet.pop("id-a") is a and fleet.pop("gone", None) is None
    assert list(fleet) == ["id-b", "id-c"] and "id-b" in fleet and len(fleet) == 2
    assert select(task(), fleet).rejected == {"b": NO_FREE_SLOT}


def test_a_list_with_a_helper_id_twice_goes_through_the_pipeline():
    twice = [helper("a"), helper("b"), helper("a", cpus_free=2)]
    assert Fleet.of(twice) is None
    assert_same(select(task(), twice), select_by_pipeline(task(), twice))


def test_names_used_twice_count_as_the_pipeline_counts_them():
    same_name = [helper("a", online=False), HelperView("id-2", "a", online=False), helper("b")]
    fleet = Fleet(same_name)
    assert not fleet.names_are_unique
    assert select(task(), fleet).wait_reason() == "2 helpers: 1 offline"
    del fleet["id-2"]
    assert fleet.names_are_unique
    assert select(task(), fleet).wait_reason() == "2 helpers: 1 offline"


def test_wait_reason_lists_equal_counts_in_the_order_first_met():
    helpers = [helper("cpu-only"), helper("gone", online=False)]
    assert select(task(gpus=1), helpers).wait_reason() == (
        f"2 helpers: 1 {NOT_ENOUGH_GPUS}, 1 {OFFLINE}"
    )
    helpers.reverse()
    assert select(task(gpus=1), helpers).wait_reason() == (
        f"2 helpers: 1 {OFFLINE}, 1 {NOT_ENOUGH_GPUS}"
    )


def test_other_filters_or_scorers_go_through_the_pipeline():
    fleet = Fleet([helper("a", cpus_free=2), helper("b")])
    sel = select(task(), fleet, filters=())
    assert [c.helper.name for c in sel.candidates] == ["b", "a"]
    assert not isinstance(sel.candidates, Ranking)
    assert not handles(task(gpus=1.0), FILTERS, SCORERS)  # a float count of GPUs
    assert not handles(task(), FILTERS, SCORERS[:-1])


def test_the_ranking_sorts_only_when_read_past_the_best():
    helpers = [helper(f"h{i}") for i in range(6)] + [
        helper("free-gpus", gpus_free=gpus(16), gpus_total=1)
    ]
    sel = select(task("t-7"), helpers)
    ranking = sel.candidates
    assert isinstance(ranking, Ranking) and len(ranking) == 7
    first = next(iter(ranking))
    assert ranking._order is None  # the best came from max() and the tied draws
    assert ranking[0] == first and ranking._order is not None
    assert list(ranking) == select_by_pipeline(task("t-7"), helpers).candidates
    assert ranking[-1].helper.name == "free-gpus"  # a GPU host, kept for GPU work
    assert ranking[1:3] == list(ranking)[1:3]


def test_gpu_scores_are_kept_per_number_of_gpus_asked():
    host = helper("gpu", gpus_free=(gpu(0, 4), gpu(1, 16), gpu(2, 8)), gpus_total=3)
    fleet = Fleet([host])
    one = select(task(gpus=1), fleet).candidates[0].scores["prefer_free_gpu_memory"]
    two = select(task(gpus=2), fleet).candidates[0].scores["prefer_free_gpu_memory"]
    assert (one, two) == (1.0, 0.75)
    assert select(task(gpus=1), fleet).candidates[0].score == pytest.approx(
        (2 + 1 + 1 + 1 + 1 + 1 + 4 + 0) / 12
    )
