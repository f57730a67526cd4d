"""The scheduler prefers a helper that already has the task's image, with
real helper processes and real Docker. The only image that builds here is
seeker-demo:latest (no registry can be reached), and helpers on one engine
share its image list, so the helpers declare the images they report
(--test-resources @FILE with "images"): that is how a test tells a helper
that has the image from one that has not."""

from __future__ import annotations

import json

import pytest

from seeker.client import SeekerClient
from tests.integration.conftest import make_cluster
from tests.integration.harness import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]

SAYS_WHERE = ["sh", "-c", "echo $SEEKER_HELPER_NAME"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, mongo_url, workload_image):
    s = make_cluster(tmp_path_factory, mongo_url, "image-cluster", "--liveness", "30")
    yield s
    s.stop()


@pytest.fixture
def declare(tmp_path):
    """`declare(name, cpus, images)`: the --test-resources argument of a
    helper with that many CPUs, 8 GiB and that list of images."""

    def write(name: str, cpus: int, images: list[str]) -> str:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"cpus": cpus, "memory": "8g", "images": images}))
        return f"@{path}"

    return write


def ran_on(client: SeekerClient, task_id: str) -> str:
    task = client.wait(task_id, timeout=60, poll=0.1)
    assert task["state"] == "succeeded", task
    return task["result"]["helper_name"]


def test_a_helper_reports_the_images_its_docker_has(fleet, workload_image):
    add, client = fleet
    add("lister", "cpus=2,memory=2g")
    (lister,) = [h for h in client.helpers() if h["name"] == "lister"]
    assert "docker.io/library/seeker-demo:latest" in lister["resources"]["images"]


def test_a_task_goes_to_the_helper_with_its_image_and_spreads_when_none_has_it(
    fleet, declare, workload_image
):
    add, client = fleet
    # "has-it" has a CPU less than "bare": without its image, it would lose every time
    two_slots = ("--slots", "2")
    add("has-it", declare("has-it", 7, ["seeker-demo"]), "--label", "one=yes", *two_slots)
    add("bare", declare("bare", 8, []), "--label", "one=yes", "--label", "two=yes", *two_slots)
    add("also-bare", declare("also-bare", 8, []), "--label", "two=yes", *two_slots)
    one = {"constraints": {"one": "yes"}, "resources": {"cpus": 1}}
    for image in (workload_image, "docker.io/library/seeker-demo:latest", "seeker-demo"):
        task_id = client.submit(image, SAYS_WHERE, **one)["task_id"]
        assert ran_on(client, task_id) == "has-it", image
        assert client.results(task_id)[0]["stdout"] == "has-it\n"

    # neither "bare" nor "also-bare" has it: the second task goes to the
    # helper the first left emptier, as without the scorer
    two = {"constraints": {"two": "yes"}, "resources": {"cpus": 1}}
    first = client.submit(workload_image, ["sleep", "5"], **two)["task_id"]
    wait_until(lambda: client.get(first)["assignments"], 30, "the first task to be placed")
    second = client.submit(workload_image, SAYS_WHERE, **two)["task_id"]
    assert {ran_on(client, first), ran_on(client, second)} == {"bare", "also-bare"}
