"""Inputs with real processes, real Docker and a real wire-protocol database:
an uploaded file's bytes inside the container, read-only; the same input
on the same helper fetched once (the helper's cache counters say so); a
directory unpacked; the output of one task read by another; a helper
refused an input its assignment does not name."""

from __future__ import annotations

import hashlib
import json

import pytest
import requests

from seeker.client import SeekerClient
from serving import grants, receipts
from tests.integration.harness import cli, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@pytest.fixture(scope="module")
def client(stack) -> SeekerClient:
    c = SeekerClient(stack.seeker_url, stack.token)
    wait_until(lambda: c.helpers(), 30, "the helper to register")
    return c


def auth(stack) -> dict:
    return {"Authorization": f"Bearer {stack.token}"}


def cache_of(stack) -> dict:
    status = requests.get(f"{stack.helper_url}/api/v1/status", headers=auth(stack), timeout=10)
    return status.json()["input_cache"]


def submit(stack, *args: str) -> tuple[int, dict]:
    out = cli("submit", "--json", "--wait", *args, token=stack.token, seeker_url=stack.seeker_url)
    assert out.stdout, f"no output; stderr: {out.stderr}\n{stack.logs()}"
    return out.returncode, json.loads(out.stdout)


def stdout_of(body: dict) -> str:
    [result] = [r for r in body["results"] if r["canonical"]]
    return result["stdout"]


def test_an_input_files_bytes_are_seen_inside_the_container_read_only(
    stack, client, workload_image, tmp_path
):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"".join(b"layer %d: 0.%d\n" % (i, i) for i in range(2000)))
    script = "cat /data/w.bin; if touch /data/w.bin 2>/dev/null; then echo WRITABLE; fi"
    code, body = submit(
        stack, "--input", f"{weights}:/data/w.bin", workload_image, "--", "sh", "-c", script
    )
    assert code == 0, stack.logs()
    [result] = body["results"]
    # the bytes as the container read them (the digest is of all of stdout),
    # and no WRITABLE after them (Docker's logs keep text, so the file is text)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert result["output_digest"] == f"sha256:{digest}", result["stdout"][-200:]
    [inp] = body["task"]["inputs"]
    assert inp["path"] == "/data/w.bin" and inp["size"] == weights.stat().st_size
    [a] = body["task"]["assignments"]
    assert a["fetching_at"] is not None and a["fetching_at"] <= a["started_at"]


def test_the_same_input_is_sent_once_and_fetched_once_per_helper(
    stack, client, workload_image, tmp_path
):
    data = tmp_path / "same.bin"
    data.write_bytes(b"5 GB of weights, in spirit\n" * 4096)
    first = client.upload_input(data)
    stored = requests.get(
        f"{stack.channel_url}/api/v1/inputs/{first['artifact_id']}", headers=auth(stack), timeout=10
    ).json()
    assert client.upload_input(data) == first  # asked, found, not sent again
    again = requests.get(
        f"{stack.channel_url}/api/v1/inputs/{first['artifact_id']}", headers=auth(stack), timeout=10
    ).json()
    assert again["uploaded_at"] == stored["uploaded_at"]
    before = cache_of(stack)
    for _ in range(2):
        task = client.submit(
            workload_image, ["sh", "-c", "wc -c < /input/same.bin"], inputs=[first]
        )
        task = client.wait(task["task_id"], timeout=120)
        assert task["state"] == "succeeded", stack.logs()
        [result] = client.results(task["task_id"])
        assert result["stdout"].strip() == str(data.stat().st_size)
    after = cache_of(stack)
    assert after["misses"] - before["misses"] == 1
    assert after["hits"] - before["hits"] == 1
    assert after["bytes_fetched"] - before["bytes_fetched"] == data.stat().st_size


def test_a_directory_is_unpacked_at_its_path(stack, client, workload_image, tmp_path):
    folder = tmp_path / "dataset"
    (folder / "part").mkdir(parents=True)
    (folder / "a.csv").write_text("1,2\n")
    (folder / "part" / "b.csv").write_text("3,4\n")
    code, body = submit(
        stack,
        "--input",
        str(folder),
        workload_image,
        "--",
        "sh",
        "-c",
        "cat /input/dataset/a.csv /input/dataset/part/b.csv",
    )
    assert code == 0, stack.logs()
    assert stdout_of(body) == "1,2\n3,4\n"
    assert body["task"]["inputs"][0]["unpack"] is True


def test_an_output_of_one_task_is_an_input_of_the_next(stack, client, workload_image):
    train = client.submit(
        workload_image,
        ["sh", "-c", "sleep 1; mkdir -p /output/model && echo 0.93 > /output/model/weights.txt"],
    )
    evaluate = client.submit(
        workload_image,
        ["cat", "/weights/model/weights.txt"],
        inputs=[{"output_of": train["task_id"], "path": "/weights"}],
    )
    assert evaluate["waiting_for"] == [train["task_id"]]  # held, not placed
    evaluate = client.wait(evaluate["task_id"], timeout=120)
    assert evaluate["state"] == "succeeded", stack.logs()
    [result] = client.results(evaluate["task_id"])
    assert result["stdout"] == "0.93\n"
    train = client.get(train["task_id"])
    succeeded = next(h["at"] for h in train["history"] if h["state"] == "succeeded")
    dispatched = next(h["at"] for h in evaluate["history"] if h["state"] == "dispatched")
    assert dispatched >= succeeded


def test_a_helper_is_refused_an_input_of_a_task_not_assigned_to_it(stack, client, tmp_path):
    """What a helper holds for an input is the seeker's grant for that input
    and that attempt: made here as the seeker makes it (its receipt key is
    derived from the shared token), for task t-1 on helper-1."""
    mine, other = tmp_path / "mine.bin", tmp_path / "other.bin"
    mine.write_bytes(b"mine")
    other.write_bytes(b"not yours")
    mine_id = client.upload_input(mine)["artifact_id"]
    other_id = client.upload_input(other)["artifact_id"]
    key = receipts.receipt_key(None, stack.token)
    helper_id = client.helpers()[0]["helper_id"]
    grant = {"Authorization": "Bearer " + grants.sign(key, mine_id, "t-1", helper_id, 1)}
    url = f"{stack.channel_url}/api/v1/artifacts"
    assert requests.get(f"{url}/{mine_id}", headers=grant, timeout=10).content == b"mine"
    refused = requests.get(f"{url}/{other_id}", headers=grant, timeout=10)
    assert refused.status_code == 403
    assert refused.json()["error"] == "the grant does not cover this input"
    described = requests.get(
        f"{stack.channel_url}/api/v1/inputs/{other_id}", headers=grant, timeout=10
    )
    assert described.status_code == 403
    # a helper's own credential is not a way in either
    credential = (stack.base / "helper-1" / "credential").read_text().strip()
    as_helper = {"Authorization": f"Bearer {credential}"}
    assert requests.get(f"{url}/{mine_id}", headers=as_helper, timeout=10).status_code == 401


def test_an_input_that_does_not_exist_is_refused_at_submit(stack, client, workload_image):
    out = cli(
        "submit",
        "--input-artifact",
        "sha256:" + "0" * 64,
        workload_image,
        "--",
        "true",
        token=stack.token,
        seeker_url=stack.seeker_url,
    )
    assert out.returncode == 1
    assert "inputs.0.artifact_id: no uploaded input or artifact has id" in out.stderr
