"""The channel's inputs: uploads stored once per content (InputStore over
every backend), and the routes through Flask's test client: describe, the
output lookup, downloads, and the grants that let a helper read only the
inputs of its own attempt."""

from __future__ import annotations

import hashlib
import io
import threading

import pytest

from channel.artifacts import ArtifactStore, ArtifactTooLarge
from channel.inputs import InputStore, sources
from serving import grants, receipts
from serving.errors import BadRequest
from tests.auth_support import bearer, receipt_headers
from tests.unit.test_channel_artifacts import CHUNK, OCTET_TYPE, data, make_app, upload

AUTH = bearer("t")
KEY = receipts.receipt_key(None, "t")  # the channel's, derived from its token


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@pytest.fixture
def inputs(db) -> InputStore:
    artifacts = ArtifactStore(db, chunk_size=CHUNK)
    artifacts.ensure_indexes()
    store = InputStore(db, artifacts, chunk_size=CHUNK)
    store.ensure_indexes()
    return store


@pytest.fixture
def db(mongo_db):
    from tests.unit.test_channel_artifacts import _mongomock_gridfs

    if type(mongo_db).__module__.startswith("mongomock"):
        _mongomock_gridfs()
    return mongo_db


class TestInputStore:
    def test_the_same_bytes_are_stored_once_under_their_digest(self, inputs, clock):
        body = data(3 * CHUNK + 1)
        first, created = inputs.put("w.bin", sha(body), io.BytesIO(body), clock(), 10 * CHUNK)
        again, created_again = inputs.put("other.bin", sha(body), io.BytesIO(body), clock(), 10**6)
        assert (created, created_again) == (True, False)
        assert first["artifact_id"] == f"sha256:{sha(body)}" == again["artifact_id"]
        assert again["name"] == "w.bin"  # the first copy
        assert inputs.files.count_documents({}) == 1
        assert inputs.chunks.count_documents({}) == 4
        doc, blocks = inputs.download(first["artifact_id"])
        assert b"".join(blocks) == body and doc["size"] == len(body)

    def test_bytes_that_do_not_match_the_digest_store_nothing(self, inputs, clock):
        with pytest.raises(BadRequest, match="do not match"):
            inputs.put("w.bin", "0" * 64, io.BytesIO(data(2 * CHUNK)), clock(), 10 * CHUNK)
        assert inputs.files.count_documents({}) == 0 == inputs.chunks.count_documents({})

    def test_an_upload_over_the_limit_stores_nothing(self, inputs, clock):
        body = data(3 * CHUNK)
        with pytest.raises(ArtifactTooLarge):
            inputs.put("w.bin", sha(body), io.BytesIO(body), clock(), 2 * CHUNK)
        assert inputs.chunks.count_documents({}) == 0

    def test_describe_knows_results_artifacts_by_id_and_by_what_made_them(self, inputs, clock):
        key = {"task_id": "t1", "helper_id": "h1", "attempt": 2, "name": "output.tar"}
        art, _ = inputs.artifacts.put(key, io.BytesIO(b"tar"), clock(), 100)
        assert inputs.describe(art["artifact_id"]) == art
        assert inputs.describe_output("t1", "h1", 2, "output.tar") == art
        assert inputs.describe_output("t1", "h1", 3, "output.tar") is None
        assert inputs.describe("nonsense") is None
        assert inputs.describe("sha256:" + "1" * 64) is None
        assert sources(art) == [art["artifact_id"], "t1/h1/2/output.tar"]


def test_two_uploads_of_the_same_bytes_at_once_keep_one_whole_copy(mock_db, clock):
    from tests.unit.test_channel_artifacts import _mongomock_gridfs

    _mongomock_gridfs()
    artifacts = ArtifactStore(mock_db, chunk_size=CHUNK)
    store = InputStore(mock_db, artifacts, chunk_size=CHUNK)
    store.ensure_indexes()
    body = data(6 * CHUNK)
    results = []

    def put():
        results.append(store.put("w", sha(body), io.BytesIO(body), clock(), 10**6))

    threads = [threading.Thread(target=put) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert store.files.count_documents({}) == 1 and store.chunks.count_documents({}) == 6
    _, blocks = store.download(f"sha256:{sha(body)}")
    assert b"".join(blocks) == body


# --- the routes -------------------------------------------------------------------


@pytest.fixture
def client(mock_db, clock):
    from tests.unit.test_channel_artifacts import _mongomock_gridfs

    _mongomock_gridfs()
    return make_app(mock_db, clock, MAX_ARTIFACT_BYTES=8 * CHUNK).test_client()


def upload_input(client, body: bytes, name="weights.bin", digest=None, headers=None):
    return client.post(
        "/api/v1/inputs",
        query_string={"name": name, "sha256": digest or sha(body)},
        data=body,
        headers={**AUTH, **OCTET_TYPE} if headers is None else headers,
    )


def grant_for(source: str, task_id="t9", helper_id="h9", attempt=1) -> dict:
    return bearer(grants.sign(KEY, source, task_id, helper_id, attempt))


def test_an_upload_is_stored_once_and_then_answered_without_reading_the_body(client):
    body = data(3 * CHUNK)
    first = upload_input(client, body)
    assert first.status_code == 201
    assert first.json["artifact_id"] == f"sha256:{sha(body)}"
    again = upload_input(client, b"not read", digest=sha(body))
    assert again.status_code == 200 and again.json == first.json
    got = client.get(f"/api/v1/artifacts/{first.json['artifact_id']}", headers=AUTH)
    assert got.data == body and got.headers["X-Content-Sha256"] == sha(body)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"name": "../x", "sha256": "0" * 64}, "name"),
        ({"name": "x", "sha256": "XYZ"}, "sha256"),
        ({"sha256": "0" * 64}, "name"),
    ],
)
def test_a_bad_upload_query_is_a_422_naming_the_field(client, query, field):
    resp = client.post(
        "/api/v1/inputs", query_string=query, data=b"x", headers={**AUTH, **OCTET_TYPE}
    )
    assert resp.status_code == 422
    assert [d["field"] for d in resp.json["detail"]] == [field]


def test_uploads_take_the_user_token_only(client):
    body = b"abc"
    receipt = receipt_headers({"task_id": "t1", "helper_id": "h1", "attempt": 1}, "t")
    for headers in (receipt, grant_for(f"sha256:{sha(body)}")):
        resp = upload_input(client, body, headers={**headers, **OCTET_TYPE})
        assert resp.status_code == 403, resp.json
    assert upload_input(client, body, headers={**bearer("wrong"), **OCTET_TYPE}).status_code == 401


def test_a_wrong_digest_is_a_400_and_too_large_a_413(client):
    body = data(2 * CHUNK)
    assert upload_input(client, body, digest="0" * 64).status_code == 400
    big = data(9 * CHUNK)
    assert upload_input(client, big).status_code == 413


def test_a_grant_reads_the_input_it_names_and_nothing_else(client):
    mine, other = data(100, 1), data(100, 2)
    mine_id = upload_input(client, mine).json["artifact_id"]
    other_id = upload_input(client, other).json["artifact_id"]
    grant = grant_for(mine_id)
    assert client.get(f"/api/v1/inputs/{mine_id}", headers=grant).json["size"] == 100
    assert client.get(f"/api/v1/artifacts/{mine_id}", headers=grant).data == mine
    for path in (f"/api/v1/inputs/{other_id}", f"/api/v1/artifacts/{other_id}"):
        refused = client.get(path, headers=grant)
        assert refused.status_code == 403
        assert "task t9 attempt 1 on helper h9" in refused.json["detail"]
    # a grant made under another key (not the seeker's) reads nothing
    forged = bearer(grants.sign(b"not the key", mine_id, "t9", "h9", 1))
    assert client.get(f"/api/v1/artifacts/{mine_id}", headers=forged).status_code == 403


def test_a_grant_for_a_missing_input_is_a_404_and_for_another_a_403(client):
    missing = "sha256:" + "2" * 64
    assert client.get(f"/api/v1/inputs/{missing}", headers=grant_for(missing)).status_code == 404
    resp = client.get(f"/api/v1/inputs/{missing}", headers=grant_for("sha256:" + "3" * 64))
    assert resp.status_code == 403


def test_a_results_output_is_found_by_what_made_it_and_read_with_its_grant(client):
    key = {"task_id": "t1", "helper_id": "h1", "attempt": 1, "name": "output.tar"}
    stored = upload(client, b"the tar", **key).json
    source = grants.output_source("t1", "h1", 1, "output.tar")
    grant = grant_for(source)
    found = client.get("/api/v1/inputs", query_string=key, headers=grant)
    assert found.status_code == 200 and found.json["artifact_id"] == stored["artifact_id"]
    # the same grant downloads it by id: it names what made it
    got = client.get(f"/api/v1/artifacts/{stored['artifact_id']}", headers=grant)
    assert got.data == b"the tar"
    # not yet stored: 404 with the grant for it, 403 with another
    later = {**key, "attempt": 2}
    later_grant = grant_for(grants.output_source("t1", "h1", 2, "output.tar"))
    assert client.get("/api/v1/inputs", query_string=later, headers=later_grant).status_code == 404
    assert client.get("/api/v1/inputs", query_string=later, headers=grant).status_code == 403


def test_a_grant_cannot_list_results_or_store_anything(client):
    grant = grant_for("anything")
    assert client.get("/api/v1/results?task_id=t1", headers=grant).status_code == 403
    assert client.get("/api/v1/artifacts?task_id=t1", headers=grant).status_code == 403
