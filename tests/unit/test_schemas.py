"""Schemas: sizes, task specs, registrations, events, results and assignments."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from channel.models import ResultIn, ResultStatus, output_digest
from helper.models import Assignment
from seeker.helper_models import AssignmentEvent, HelperRegistration
from seeker.models import TaskSpec
from serving.schema import parse_bytes
from tests.auth_support import WELL_FORMED_RECEIPT

GiB = 1024**3
R = WELL_FORMED_RECEIPT  # every assignment carries the seeker's receipt


def fields_of(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (1024, 1024),
        ("1024", 1024),
        ("4g", 4 * GiB),
        ("4G", 4 * GiB),
        ("4gb", 4 * GiB),
        ("512m", 512 * 1024**2),
        ("512MiB", 512 * 1024**2),
        ("1.5GiB", int(1.5 * GiB)),
        ("2k", 2048),
        ("1t", 1024**4),
        (" 8 g ", 8 * GiB),
        ("100b", 100),
    ],
)
def test_parse_bytes(value, expected):
    assert parse_bytes(value) == expected


@pytest.mark.parametrize("value", ["", "g", "four", "4x", "4gg", "-1", "-4g", "1e9", "4 giga"])
def test_parse_bytes_rejects_bad_strings(value):
    with pytest.raises(ValueError, match="cannot read"):
        parse_bytes(value)


@pytest.mark.parametrize("value", [-1, -(2**40)])
def test_parse_bytes_rejects_negative_ints(value):
    with pytest.raises(ValueError, match="negative"):
        parse_bytes(value)


@pytest.mark.parametrize("value", [True, False])
def test_parse_bytes_rejects_booleans(value):
    with pytest.raises(ValueError):
        parse_bytes(value)


def test_task_spec_defaults_and_sizes():
    spec = TaskSpec(image="busybox:1.36", resources={"memory": "4g", "gpu_memory": "512m"})
    assert spec.resources.memory == 4 * GiB and spec.resources.gpu_memory == 512 * 1024**2
    assert (spec.command, spec.env, spec.replicas, spec.max_attempts) == ([], {}, 1, 1)
    assert spec.model_dump(mode="json")["resources"]["memory"] == 4 * GiB


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "busybox:1.36",
        "library/busybox:latest",
        "ghcr.io/org/tool:v1.2.3",
        "localhost:5000/my-image_name.x:tag",
        "ubuntu@sha256:" + "a" * 64,
    ],
)
def test_task_spec_accepts_image_references(image):
    assert TaskSpec(image=image).image == image


@pytest.mark.parametrize(
    "image",
    [
        "",
        "BusyBox",
        "busybox:",
        ":tag",
        "-busybox",
        "busy box",
        "busybox;rm -rf /",
        "busybox@sha256:short",
        "a" * 513,
    ],
)
def test_task_spec_rejects_bad_image_references(image):
    with pytest.raises(ValidationError) as info:
        TaskSpec(image=image)
    assert fields_of(info.value) == {"image"}


def test_task_spec_rejects_an_image_with_a_trailing_newline():
    with pytest.raises(ValidationError):
        TaskSpec(image="busybox\n")


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "", "Ä", "A=B"])
def test_task_spec_rejects_bad_env_names(name):
    with pytest.raises(ValidationError) as info:
        TaskSpec(image="busybox", env={name: "x"})
    assert fields_of(info.value) == {"env"}


def test_task_spec_rejects_an_env_name_with_a_trailing_newline():
    with pytest.raises(ValidationError):
        TaskSpec(image="busybox", env={"FOO\n": "x"})


def test_task_spec_constraints_and_placement():
    spec = TaskSpec(image="busybox", constraints={"zone": "a"}, placement="binpack")
    assert (spec.constraints, spec.placement) == ({"zone": "a"}, "binpack")
    assert (TaskSpec(image="busybox").constraints, TaskSpec(image="busybox").placement) == (
        {},
        "spread",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"placement": "pack"}, "placement"),
        ({"constraints": {"zone": 1}}, "constraints.zone"),
        ({"constraints": "zone=a"}, "constraints"),
        ({"resources": {"memory": 2**63}}, "resources.memory"),
        ({"resources": {"gpu_memory": 2**63}}, "resources.gpu_memory"),
    ],
)
def test_task_spec_refuses_bad_placement_constraints_and_sizes(body, field):
    with pytest.raises(ValidationError) as info:
        TaskSpec.model_validate({"image": "busybox", **body})
    assert fields_of(info.value) == {field}


def test_task_spec_takes_the_largest_storable_size():
    spec = TaskSpec(image="busybox", resources={"memory": 2**63 - 1})
    assert spec.resources.memory == 2**63 - 1


def test_task_spec_accepts_env_names():
    assert TaskSpec(image="busybox", env={"_A1": "", "PATH": "/bin"}).env["PATH"] == "/bin"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"image": "busybox", "priority": 5}, "priority"),
        ({"image": "busybox", "resources": {"tpus": 1}}, "resources.tpus"),
        ({"image": "busybox", "replicas": 0}, "replicas"),
        ({"image": "busybox", "replicas": 33}, "replicas"),
        ({"image": "busybox", "max_attempts": 0}, "max_attempts"),
        ({"image": "busybox", "timeout": 0}, "timeout"),
        ({"image": "busybox", "resources": {"gpus": -1}}, "resources.gpus"),
        ({"image": "busybox", "resources": {"memory": "lots"}}, "resources.memory"),
        ({"image": "busybox", "resources": {"memory": -5}}, "resources.memory"),
        ({"image": "busybox", "command": "echo hi"}, "command"),
        ({"image": "busybox", "command": ["x" * (129 * 1024)]}, "command"),
        ({}, "image"),
    ],
)
def test_task_spec_names_the_offending_field(body, field):
    with pytest.raises(ValidationError) as info:
        TaskSpec.model_validate(body)
    assert field in fields_of(info.value)


def test_helper_registration():
    reg = HelperRegistration(helper_id="abc-1", name="gpu-1", url="http://10.0.0.1:7072")
    assert reg.slots == 1 and reg.resources.gpus == []
    for bad in ({"url": "ftp://x"}, {"helper_id": "a/b"}, {"slots": 0}, {"extra": 1}):
        body = {"helper_id": "abc", "name": "n", "url": "http://x", **bad}
        with pytest.raises(ValidationError) as info:
            HelperRegistration.model_validate(body)
        assert fields_of(info.value) == set(bad)


def test_helper_registration_boot_id_and_running():
    body = {"helper_id": "abc", "name": "n", "url": "http://x"}
    reg = HelperRegistration.model_validate({**body, "boot_id": "b" * 64, "running": ["t1.1"]})
    assert (reg.boot_id, reg.running) == ("b" * 64, ["t1.1"])
    assert HelperRegistration.model_validate(body).running == []
    with pytest.raises(ValidationError) as info:
        HelperRegistration.model_validate({**body, "boot_id": "b" * 65})
    assert fields_of(info.value) == {"boot_id"}


@pytest.mark.parametrize(
    ("gpu", "field"),
    [
        ({"index": -1}, "resources.gpus.0.index"),
        ({"index": 1025}, "resources.gpus.0.index"),
        ({"index": 0, "memory_free": 2**63}, "resources.gpus.0.memory_free"),
        ({"index": 0, "memory_total": -1}, "resources.gpus.0.memory_total"),
    ],
)
def test_helper_registration_bounds_gpu_figures(gpu, field):
    body = {"helper_id": "abc", "name": "n", "url": "http://x", "resources": {"gpus": [gpu]}}
    with pytest.raises(ValidationError) as info:
        HelperRegistration.model_validate(body)
    assert fields_of(info.value) == {field}


def test_assignment_event():
    ev = AssignmentEvent(helper_id="h1", attempt=1, state="finished", status="succeeded")
    assert ev.state.value == "finished"
    assert AssignmentEvent(helper_id="h1", attempt=2, state="lost").state.value == "lost"
    with pytest.raises(ValidationError) as info:
        AssignmentEvent(helper_id="h1", attempt="one", state="exploded")
    assert fields_of(info.value) == {"attempt", "state"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"attempt": 2**63}, "attempt"),
        ({"exit_code": 2**63}, "exit_code"),
        ({"exit_code": -(2**63) - 1}, "exit_code"),
        ({"helper_id": ""}, "helper_id"),
        ({"status": "x" * 33}, "status"),
    ],
)
def test_assignment_event_bounds(change, field):
    body = {"helper_id": "h1", "attempt": 1, "state": "finished", **change}
    with pytest.raises(ValidationError) as info:
        AssignmentEvent.model_validate(body)
    assert fields_of(info.value) == {field}


def test_assignment_event_takes_the_largest_int64():
    ev = AssignmentEvent(helper_id="h1", attempt=2**63 - 1, state="finished", exit_code=-(2**63))
    assert ev.attempt == 2**63 - 1


@pytest.mark.parametrize("attempt", [0, -1])
def test_assignment_event_refuses_attempts_below_one(attempt):
    with pytest.raises(ValidationError):
        AssignmentEvent(helper_id="h1", attempt=attempt, state="finished")


def result_body(**fields) -> dict:
    body = {
        "task_id": "t1",
        "helper_id": "h1",
        "attempt": 1,
        "image": "busybox",
        "status": "succeeded",
        "exit_code": 0,
        "output_digest": output_digest(b"hi\n"),
        "finished_at": "2024-05-01T12:00:00+00:00",
        "sent_at": "2024-05-01T12:00:01+00:00",
    }
    body.update(fields)
    return body


def test_result_in_accepts_a_result():
    r = ResultIn.model_validate(result_body())
    assert r.status is ResultStatus.SUCCEEDED
    assert r.finished_at == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert (r.stdout, r.stdout_truncated) == ("", False)


@pytest.mark.parametrize(
    "digest",
    [
        "a" * 64,
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "md5:" + "a" * 64,
        "sha256:" + "g" * 64,
        "sha256:" + "a" * 64 + "\n",
    ],
)
def test_result_in_rejects_bad_digests(digest):
    with pytest.raises(ValidationError) as info:
        ResultIn.model_validate(result_body(output_digest=digest))
    assert fields_of(info.value) == {"output_digest"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "great"}, "status"),
        ({"attempt": 0}, "attempt"),
        ({"task_id": ""}, "task_id"),
        ({"finished_at": "yesterday"}, "finished_at"),
        ({"secret": 1}, "secret"),
    ],
)
def test_result_in_names_bad_fields(change, field):
    with pytest.raises(ValidationError) as info:
        ResultIn.model_validate(result_body(**change))
    assert fields_of(info.value) == {field}


def test_output_digest_is_sha256_of_stdout():
    assert output_digest(b"hello") == "sha256:" + hashlib.sha256(b"hello").hexdigest()


def test_assignment_key_and_validation():
    a = Assignment(task_id="t1", attempt=2, helper_id="h1", image="busybox", receipt=R)
    assert a.key == "t1.2" and a.resources.gpus == 0
    with pytest.raises(ValidationError) as info:
        Assignment.model_validate({"task_id": "t1", "attempt": 1, "image": "x", "extra": 1})
    assert fields_of(info.value) == {"helper_id", "extra", "receipt"}


def test_assignment_gpu_indices():
    a = Assignment(
        task_id="t1", attempt=1, helper_id="h1", image="x", receipt=R, gpu_indices=[0, 3]
    )
    assert a.gpu_indices == [0, 3]
    plain = Assignment(task_id="t1", attempt=1, helper_id="h1", image="x", receipt=R)
    assert plain.gpu_indices == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"task_id": "a/b"}, "task_id"),
        ({"task_id": "t 1"}, "task_id"),
        ({"task_id": ""}, "task_id"),
        ({"task_id": "t" * 129}, "task_id"),
        ({"task_id": "t1\n"}, "task_id"),
        ({"attempt": 2**63}, "attempt"),
        ({"gpu_indices": [-1]}, "gpu_indices.0"),
        ({"gpu_indices": [0, 1025]}, "gpu_indices.1"),
        ({"gpu_indices": list(range(65))}, "gpu_indices"),
        ({"resources": {"memory": 2**63}}, "resources.memory"),
        ({"resources": {"gpus": 65}}, "resources.gpus"),
        ({"resources": {"cpus": 1025}}, "resources.cpus"),
        ({"receipt": "rcpt1." + "0" * 63}, "receipt"),
        ({"receipt": "rcpt1." + "A" * 64}, "receipt"),
        ({"receipt": "rcpt2." + "0" * 64}, "receipt"),
        ({"receipt": R + "\n"}, "receipt"),
        ({"receipt": ""}, "receipt"),
    ],
)
def test_assignment_bounds(change, field):
    body = {"task_id": "t1", "attempt": 1, "helper_id": "h1", "image": "x", "receipt": R, **change}
    with pytest.raises(ValidationError) as info:
        Assignment.model_validate(body)
    assert fields_of(info.value) == {field}


@pytest.mark.parametrize("task_id", ["t1", "a.b-c_D", "x" * 128])
def test_assignment_task_ids(task_id):
    a = Assignment(task_id=task_id, attempt=1, helper_id="h1", image="x", receipt=R)
    assert a.task_id == task_id


@pytest.mark.parametrize("attempt", [0, -1])
def test_assignment_refuses_attempts_below_one(attempt):
    with pytest.raises(ValidationError) as info:
        Assignment(task_id="t1", attempt=attempt, helper_id="h1", image="x", receipt=R)
    assert fields_of(info.value) == {"attempt"}
