"""What the helper's runtime asks a real Docker engine for one run: the
requests it needs, and none more (each costs the helper and the engine
CPU, per container)."""

from __future__ import annotations

import re
import secrets

from channel.models import ResultStatus
from helper.runs import RunSpec
from helper.runtime import DockerRuntime

VERSIONED = re.compile(r"^/v[0-9.]+")


def recording(runtime: DockerRuntime) -> list[tuple[str, str]]:
    """(method, path) of each request the runtime's engine client sends
    from now on, the API version left out."""
    sent: list[tuple[str, str]] = []
    api = runtime.client.api
    send = api.send

    def record(request, **kwargs):
        path = VERSIONED.sub("", request.path_url.split("?", 1)[0])
        sent.append((request.method, path))
        return send(request, **kwargs)

    api.send = record
    return sent


def test_a_run_creates_starts_waits_reads_the_logs_and_removes_and_reads_nothing_back(
    workload_image,
):
    runtime = DockerRuntime()
    sent = recording(runtime)
    name = f"seeker-test-requests-{secrets.token_hex(4)}"
    outcome = runtime.run(
        RunSpec(name=name, image=workload_image, command=["echo", "hello"], env={})
    )
    assert outcome.status == ResultStatus.SUCCEEDED
    assert outcome.stdout == b"hello\n"
    assert len(sent) == 5, sent
    created = sent[1][1].split("/")[2]  # /containers/<id>/start
    it = f"/containers/{created}"
    # the SDK's containers.create would inspect the new container (GET
    # /containers/<id>/json) before the start: a run needs only its id
    assert sent == [
        ("POST", "/containers/create"),
        ("POST", f"{it}/start"),
        ("POST", f"{it}/wait"),
        ("GET", f"{it}/logs"),
        ("DELETE", it),
    ]
