"""Image references: normalised as Docker normalises them, listed from
Docker's image list, declared for tests, and bounded by the seeker."""

from __future__ import annotations

import json
import logging

import pytest
from docker.errors import DockerException
from pydantic import ValidationError
from test_agent_credentials import NoDocker

from helper.agent import HelperAgent
from helper.config import HelperConfig
from helper.images import MAX_IMAGES, local_images, normalise_image, normalised_images
from helper.resources import declared_resources
from helper.runtime import DockerRuntime
from seeker.helper_models import HelperRegistration, HelperResources

DIGEST = "sha256:" + "a" * 64
BUSYBOX = "docker.io/library/busybox:latest"


@pytest.mark.parametrize(
    "reference, normalised",
    [
        ("busybox", BUSYBOX),
        ("busybox:latest", BUSYBOX),
        ("library/busybox", BUSYBOX),
        ("docker.io/busybox", BUSYBOX),
        ("docker.io/library/busybox:latest", BUSYBOX),
        ("index.docker.io/library/busybox", BUSYBOX),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("team/app:2", "docker.io/team/app:2"),
        ("registry.example.com/team/app", "registry.example.com/team/app:latest"),
        ("localhost/app:1", "localhost/app:1"),
        ("localhost:5000/app", "localhost:5000/app:latest"),  # a port, not a tag
        ("localhost:5000/app:3", "localhost:5000/app:3"),
        ("Registry/app", "Registry/app:latest"),  # a capital: a domain, as Docker reads it
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
        (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),  # the digest runs
        (f"host:5000/a/b:1@{DIGEST}", f"host:5000/a/b@{DIGEST}"),
    ],
)
def test_a_reference_is_normalised_as_docker_reads_it(reference, normalised):
    assert normalise_image(reference) == normalised
    assert normalise_image(normalised) == normalised  # normalising twice changes nothing


def test_different_images_stay_different():
    names = ["busybox:1.36", "busybox:1.37", "team/busybox:1.36", "quay.io/busybox:1.36"]
    assert len({normalise_image(n) for n in names}) == len(names)


def test_a_list_is_normalised_in_order_each_once_without_placeholders():
    listed = ["seeker-demo:latest", "<none>:<none>", "busybox", "seeker-demo", "<none>@<none>", ""]
    assert normalised_images(listed) == ["docker.io/library/seeker-demo:latest", BUSYBOX]


def test_a_list_keeps_the_first_thousand_and_leaves_out_overlong_references():
    listed = ["x" * 600] + [f"app:{i}" for i in range(MAX_IMAGES + 5)]
    kept = normalised_images(listed)
    assert len(kept) == MAX_IMAGES
    assert kept[0] == "docker.io/library/app:0" and kept[-1] == f"docker.io/library/app:{999}"


def test_the_local_images_are_the_tags_and_digests_of_dockers_list():
    listing = [  # GET /images/json, newest first
        {"Id": "sha256:1", "RepoTags": ["seeker-demo:latest", "seeker-other:latest"]},
        {"Id": "sha256:2", "RepoTags": ["busybox:1.36"], "RepoDigests": [f"busybox@{DIGEST}"]},
        {"Id": "sha256:3", "RepoTags": None, "RepoDigests": None},  # dangling
        {"Id": "sha256:4", "RepoTags": ["<none>:<none>"], "RepoDigests": ["<none>@<none>"]},
    ]
    assert local_images(listing) == [
        "docker.io/library/seeker-demo:latest",
        "docker.io/library/seeker-other:latest",
        "docker.io/library/busybox:1.36",
        f"docker.io/library/busybox@{DIGEST}",
    ]


# --- the helper's report ----------------------------------------------------------------


class FakeApi:
    def __init__(self, listing=None, error=None):
        self.listing, self.error, self.calls = listing or [], error, 0

    def images(self):
        self.calls += 1
        if self.error:
            raise self.error
        return self.listing


class FakeDocker:
    def __init__(self, api: FakeApi):
        self.api = api


def test_the_runtime_lists_the_images_with_one_docker_call():
    api = FakeApi([{"RepoTags": ["busybox:1.36"], "RepoDigests": []}])
    assert DockerRuntime(client=FakeDocker(api)).image_references() == [
        "docker.io/library/busybox:1.36"
    ]
    assert api.calls == 1


def test_a_docker_that_cannot_list_its_images_reports_none(caplog):
    runtime = DockerRuntime(client=FakeDocker(FakeApi(error=DockerException("socket gone"))))
    with caplog.at_level(logging.WARNING, logger="helper.runtime"):
        assert runtime.image_references() == []
    assert "cannot list the local images: socket gone" in caplog.text


class ImagesOnHost(NoDocker):
    def __init__(self, *references: str):
        self.references = list(references)

    def image_references(self):
        return normalised_images(self.references)


@pytest.fixture
def agent_with(tmp_path):
    made = []

    def make(runtime, declared=None) -> HelperAgent:
        cfg = HelperConfig("http://seeker:1", "http://channel:1", "t", tmp_path, port=0,
                           declared=declared or {})  # fmt: skip
        made.append(HelperAgent(cfg, runtime=runtime))
        return made[-1]

    yield make
    for a in made:
        a.server.stop()


def test_each_registration_reports_the_images_docker_has_now(agent_with):
    runtime = ImagesOnHost("busybox:1.36")
    agent = agent_with(runtime)
    assert agent.registration()["resources"]["images"] == ["docker.io/library/busybox:1.36"]
    runtime.references.append("seeker-demo")  # pulled since
    assert agent.registration()["resources"]["images"] == [
        "docker.io/library/busybox:1.36",
        "docker.io/library/seeker-demo:latest",
    ]
    assert agent.describe()["resources"]["images"] == agent.registration()["resources"]["images"]
    HelperRegistration.model_validate(agent.registration())


def test_declared_images_stand_in_for_dockers(agent_with, tmp_path):
    path = tmp_path / "declared.json"
    path.write_text(json.dumps({"cpus": 8, "images": ["seeker-demo", f"busybox@{DIGEST}"]}))
    declared = declared_resources(f"@{path}")
    assert declared["images"] == [
        "docker.io/library/seeker-demo:latest",
        f"docker.io/library/busybox@{DIGEST}",
    ]
    agent = agent_with(ImagesOnHost("busybox:1.36"), declared)
    assert agent.resources()["images"] == declared["images"]
    path.write_text(json.dumps({"images": []}))  # none: tells two helpers of one host apart
    none_declared = agent_with(ImagesOnHost("busybox"), declared_resources(f"@{path}"))
    assert none_declared.resources()["images"] == []


@pytest.mark.parametrize("images", ['"busybox"', "[1, 2]", '{"busybox": 1}'])
def test_a_bad_images_declaration_says_what_is_wrong(tmp_path, images):
    path = tmp_path / "bad.json"
    path.write_text(f'{{"images": {images}}}')
    with pytest.raises(ValueError, match="images must be a list of image references"):
        declared_resources(f"@{path}")


# --- what the seeker takes ----------------------------------------------------------------


def test_the_seeker_stores_reported_images_normalised():
    res = HelperResources.model_validate({"images": ["busybox", "busybox:latest", "team/x:1"]})
    assert res.images == [BUSYBOX, "docker.io/team/x:1"]


@pytest.mark.parametrize(
    "images, says",
    [
        ([f"app:{i}" for i in range(MAX_IMAGES + 1)], "at most 1000 items"),
        (["x" * 513], "at most 512 characters"),
        ([""], "at least 1 character"),
        ("busybox", "valid list"),
    ],
)
def test_the_seeker_bounds_the_reported_images(images, says):
    with pytest.raises(ValidationError, match=says):
        HelperResources.model_validate({"images": images})
