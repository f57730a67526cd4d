"""prefer_image_present: a helper that already has the task's image wins
over one with a little more room, not over a much emptier one, under
either policy; a task whose image no helper has is placed as before."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from scheduler_views import GiB, helper, task
from test_seeker_app import Env

from helper.images import normalised_images
from seeker.placement import select
from seeker.placement.capacity import view_of
from seeker.placement.pipeline import SCORERS, prefer_image_present, select_by_pipeline

DIGEST = "sha256:" + "c" * 64
BUSYBOX = "docker.io/library/busybox:latest"
WORK = {"cpus": 1, "memory": 1 * GiB}


def has(*references: str) -> frozenset[str]:
    """A helper's images, as the seeker keeps them (normalised)."""
    return frozenset(normalised_images(references))


def names(selection) -> list[str]:
    return [c.helper.name for c in selection.candidates]


def test_the_image_counts_under_any_spelling_docker_reads_the_same():
    demo = helper("demo", images=has("seeker-demo:latest", f"busybox@{DIGEST}"))
    for image in ("seeker-demo", "docker.io/library/seeker-demo:latest", f"busybox:1.36@{DIGEST}"):
        assert prefer_image_present(task(image=image), demo) == 1.0, image
    for image in ("seeker-demo:2", "team/seeker-demo", "busybox", "busybox:1.36", ""):
        assert prefer_image_present(task(image=image), demo) == 0.0, image
    assert prefer_image_present(task(image="seeker-demo"), helper("bare")) == 0.0


def test_of_two_helpers_with_equal_room_the_one_with_the_image_wins():
    helpers = [helper("a"), helper("b"), helper("c", images=has("seeker-demo"))]
    for n in range(10):  # whatever way ties fall for this task id
        sel = select(task(str(n), image="seeker-demo:latest"), helpers)
        assert names(sel)[0] == "c"
        assert sel.candidates[0].scores["prefer_image_present"] == 1.0
        assert [c.scores["prefer_image_present"] for c in sel.candidates[1:]] == [0.0, 0.0]


def test_the_image_beats_a_little_more_room():
    with_image = helper("with-image", slots=4, running=1, cpus_free=6, memory_free=12 * GiB,
                        images=has("seeker-demo"))  # fmt: skip
    roomier = helper("roomier", slots=4, running=0)
    sel = select(task(image="seeker-demo", **WORK), [roomier, with_image])
    assert names(sel) == ["with-image", "roomier"]
    assert select(task(image="busybox", **WORK), [roomier, with_image]).candidates[0].helper is (
        roomier
    )


def test_a_much_emptier_helper_beats_the_image():
    nearly_full = helper("nearly-full", slots=4, running=3, cpus_free=2, memory_free=4 * GiB,
                         images=has("seeker-demo"))  # fmt: skip
    idle = helper("idle", slots=4, running=0)
    sel = select(task(image="seeker-demo", **WORK), [nearly_full, idle])
    assert names(sel) == ["idle", "nearly-full"]
    assert sel.candidates[1].scores["prefer_image_present"] == 1.0


def test_binpack_does_not_invert_it():
    helpers = [helper("bare", slots=4), helper("with-image", slots=4, images=has("seeker-demo"))]
    sel = select(task(image="seeker-demo", placement="binpack", **WORK), helpers)
    assert names(sel) == ["with-image", "bare"]
    assert sel.candidates[0].scores["prefer_image_present"] == 1.0


def test_a_task_whose_image_no_helper_has_is_ranked_as_without_the_scorer():
    helpers = [
        helper("busy", slots=4, running=2, cpus_free=4, images=has("busybox")),
        helper("idle", slots=4, images=has("seeker-demo:1")),
        helper("half", slots=4, running=1, cpus_free=6),
        helper("twin", slots=4, images=has("busybox")),
    ]
    for n in range(5):
        t = task(str(n), image="seeker-demo:2", **WORK)
        without = select_by_pipeline(t, helpers, scorers=SCORERS[:-1])
        assert names(select(t, helpers)) == names(without)


def test_the_view_holds_the_reported_images():
    now, liveness = datetime(2024, 5, 1, tzinfo=timezone.utc), timedelta(seconds=45)
    doc = {"helper_id": "h1", "name": "one", "resources": {"images": [BUSYBOX]}}
    assert view_of(doc, [], now, liveness).images == frozenset({BUSYBOX})
    assert view_of({"helper_id": "h2", "name": "two"}, [], now, liveness).images == frozenset()


def test_a_registered_helper_with_the_image_gets_the_task(mock_db, clock):
    env = Env(mock_db, clock)
    room = {"cpus": 8, "memory_total": 16 * GiB, "memory_available": 16 * GiB}
    assert env.register("h1", "without", resources=room).status_code == 200
    with_image = {**room, "images": ["seeker-demo", "<none>:<none>"]}
    assert env.register("h2", "with", resources=with_image).status_code == 200
    assert env.helpers.get("h2")["resources"]["images"] == ["docker.io/library/seeker-demo:latest"]
    task_id = env.submit(image="seeker-demo:latest")
    assert env.dispatcher.dispatch_pending() == 1
    assert [a["helper_id"] for a in env.pushed] == ["h2"]
    assert env.pushed[0]["task_id"] == task_id
    too_many = {**room, "images": [f"app:{i}" for i in range(1001)]}
    resp = env.register("h3", "hoarder", resources=too_many)
    assert resp.status_code == 422
    assert "resources.images" in str(resp.get_json())
