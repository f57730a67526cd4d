"""The channel as its own process (`python -m channel start`) over a real
wire-protocol database, through ChannelClient and plain HTTP: paging a task's
results, filters, and artifacts streamed up and down."""

from __future__ import annotations

import hashlib
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

import pymongo
import pytest
import requests

from channel.client import ChannelClient
from channel.models import output_digest
from serving.http import ApiError, Unreachable
from tests.auth_support import bearer, receipt_for
from tests.integration.harness import Service, free_port

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
MAX_ARTIFACT = 8 * MIB
RUNS = 250
HELPERS = ["h0", "h1", "h2", "h3", "h4"]
STATUSES = ["succeeded", "failed", "succeeded", "timed_out", "error", "cancelled", "failed"]


@dataclass
class Channel:
    url: str
    token: str
    client: ChannelClient
    db: pymongo.database.Database

    def http(self, method: str, path: str, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kw)

    def receipt(self, task_id: str, helper_id: str, attempt: int) -> str:
        """The seeker's receipt for an attempt (its key derived from the token)."""
        return receipt_for(task_id, helper_id, attempt, self.token)

    def post_result(self, result: dict) -> dict:
        """Post as the helper that ran the attempt does: with its receipt."""
        receipt = self.receipt(result["task_id"], result["helper_id"], result["attempt"])
        return self.client.post_result(result, receipt=receipt)

    def upload_artifact(self, task_id: str, helper_id: str, attempt: int, name: str, path):
        receipt = self.receipt(task_id, helper_id, attempt)
        return self.client.upload_artifact(task_id, helper_id, attempt, name, path, receipt=receipt)


def with_database(mongo_url: str, name: str) -> str:
    base, _, query = mongo_url.partition("?")
    return base.rstrip("/") + "/" + name + (f"?{query}" if query else "")


@pytest.fixture(scope="module")
def channel(tmp_path_factory, mongo_url):
    base = tmp_path_factory.mktemp("channel_api")
    port, token, name = free_port(), secrets.token_urlsafe(16), f"chapi_{secrets.token_hex(4)}"
    args = ["channel", "start", "--port", str(port), "--data-dir", str(base / "data")]
    args += ["--mongo-url", with_database(mongo_url, name), "--token", token]
    args += ["--max-artifact-bytes", str(MAX_ARTIFACT), "--log-level", "debug"]
    service = Service("channel", args, base)
    url = f"http://127.0.0.1:{port}"
    mongo = pymongo.MongoClient(mongo_url, tz_aware=True)
    client = ChannelClient(url, token)
    try:
        service.start().wait_healthy(url)
        yield Channel(url, token, client, mongo[name])
    finally:
        client.close()
        exit_code = service.stop()
        mongo.drop_database(name)
        mongo.close()
    assert exit_code == 0, f"the channel did not stop cleanly:\n{service.log()}"


def run(task_id: str, n: int) -> dict:
    """The n-th run of a task: helper, status and attempt follow from n."""
    now = datetime.now(timezone.utc).isoformat()
    return {
        "task_id": task_id,
        "helper_id": HELPERS[n % len(HELPERS)],
        "attempt": n,
        "image": "busybox:1.36",
        "status": STATUSES[n % len(STATUSES)],
        "exit_code": 0,
        "stdout": f"run {n}\n",
        "output_digest": output_digest(f"run {n}\n".encode()),
        "finished_at": now,
        "sent_at": now,
    }


@pytest.fixture(scope="module")
def task(channel) -> str:
    task_id = f"paged-{secrets.token_hex(4)}"
    for n in range(1, RUNS + 1):
        assert channel.post_result(run(task_id, n))["attempt"] == n
    channel.post_result(run(f"{task_id}-other", 1))
    return task_id


def pages(client: ChannelClient, task_id: str, **query) -> list[list[int]]:
    out, after = [], None
    while True:
        page = client.results(task_id, limit=100, after=after, **query)
        out.append([r["attempt"] for r in page["results"]])
        after = page["next"]
        if after is None:
            return out


@pytest.mark.parametrize("order", ["oldest", "newest"])
def test_250_results_page_by_100_with_none_missing_or_repeated(channel, task, order):
    got = pages(channel.client, task, order=order)
    assert [len(p) for p in got] == [100, 100, 50]
    everything = [n for p in got for n in p]
    expected = list(range(1, RUNS + 1))
    assert everything == (expected if order == "oldest" else expected[::-1])


@pytest.mark.parametrize(
    "query",
    [
        {"status": "failed"},
        {"helper_id": "h2"},
        {"status": "succeeded", "helper_id": "h3"},
        {"status": "cancelled", "order": "newest"},
    ],
)
def test_filters_select_and_page(channel, task, query):
    def wanted(n: int) -> bool:
        r = run(task, n)
        return all(r[k] == v for k, v in query.items() if k != "order")

    expected = [n for n in range(1, RUNS + 1) if wanted(n)]
    if query.get("order") == "newest":
        expected.reverse()
    got = pages(channel.client, task, **query)
    assert [n for p in got for n in p] == expected
    assert expected and all(len(p) == 100 for p in got[:-1])


def test_an_unknown_status_is_400(channel, task):
    with pytest.raises(ApiError) as info:
        channel.client.results(task, status="done")
    assert info.value.status == 400 and "status" in info.value.message


def test_an_artifact_of_a_few_mib_round_trips_byte_for_byte(channel, tmp_path):
    body = random.Random(7).randbytes(3 * MIB + 12345)
    source = tmp_path / "output.tar.gz"
    source.write_bytes(body)
    key = ("art-task", "h1", 1, "out/output.tar.gz")
    doc = channel.upload_artifact(*key, source)
    assert (doc["size"], doc["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert (doc["task_id"], doc["helper_id"], doc["attempt"], doc["name"]) == key

    dest = channel.client.download_artifact(doc["artifact_id"], tmp_path / "copy")
    assert dest.read_bytes() == body
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == doc["sha256"]
    resp = channel.http("GET", f"/api/v1/artifacts/{doc['artifact_id']}", stream=True)
    assert resp.headers["Content-Length"] == str(len(body))
    assert resp.headers["Content-Disposition"] == 'attachment; filename="output.tar.gz"'
    resp.close()

    assert channel.upload_artifact(*key, source) == doc
    params = dict(zip(("task_id", "helper_id", "attempt", "name"), key, strict=True))
    again = channel.http(
        "POST",
        "/api/v1/artifacts",
        params=params,
        data=b"not the same bytes",
        headers={"Content-Type": "application/octet-stream", **bearer(channel.receipt(*key[:3]))},
    )
    assert again.status_code == 200 and again.json() == doc
    assert channel.client.artifacts("art-task") == [doc]
    assert channel.db["artifacts.files"].count_documents({"metadata.task_id": "art-task"}) == 1

    result = channel.post_result(run("art-task", 1) | {"helper_id": "h1"})
    assert result["artifacts"] == [{k: doc[k] for k in ("artifact_id", "name", "size", "sha256")}]


def orphan_chunks(db) -> int:
    files = db["artifacts.files"].distinct("_id")
    return db["artifacts.chunks"].count_documents({"files_id": {"$nin": files}})


def test_an_oversized_artifact_is_413_and_leaves_nothing(channel, tmp_path):
    big = tmp_path / "big"
    big.write_bytes(random.Random(8).randbytes(MAX_ARTIFACT + 1))
    with pytest.raises(ApiError) as info:
        channel.upload_artifact("big-task", "h1", 1, "big.bin", big)
    assert info.value.status == 413 and info.value.detail == {"max_bytes": MAX_ARTIFACT}

    def chunked():  # no Content-Length: the channel counts as it streams
        with open(big, "rb") as f:
            while block := f.read(MIB):
                yield block

    resp = channel.http(
        "POST",
        "/api/v1/artifacts",
        params={"task_id": "big-task", "helper_id": "h1", "attempt": 2, "name": "big.bin"},
        data=chunked(),
        headers={
            "Content-Type": "application/octet-stream",
            **bearer(channel.receipt("big-task", "h1", 2)),
        },
    )
    assert resp.status_code == 413, resp.text
    assert channel.client.artifacts("big-task") == []
    assert channel.db["artifacts.files"].count_documents({"metadata.task_id": "big-task"}) == 0
    assert orphan_chunks(channel.db) == 0


def test_bad_names_unknown_ids_and_no_server_are_the_client_errors(channel, tmp_path):
    source = tmp_path / "x"
    source.write_bytes(b"x")
    with pytest.raises(ApiError) as info:
        channel.upload_artifact("t", "h1", 1, "../escape", source)
    assert info.value.status == 422 and "name" in info.value.message
    with pytest.raises(ApiError) as info:
        channel.client.download_artifact("0" * 24, tmp_path / "nothing")
    assert info.value.status == 404 and not (tmp_path / "nothing").exists()
    gone = ChannelClient(f"http://127.0.0.1:{free_port()}", channel.token, timeout=2)
    with pytest.raises(Unreachable):
        gone.upload_artifact("t", "h1", 1, "x", source, receipt=channel.receipt("t", "h1", 1))
    with pytest.raises(Unreachable):
        gone.download_artifact("0" * 24, tmp_path / "nothing")
    assert list(tmp_path.iterdir()) == [source]
