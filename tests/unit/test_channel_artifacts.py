"""The channel's artifacts (GridFS) and result filters: the ArtifactStore over
every backend, and the REST API through Flask's test client over mongomock
(the plan the database chooses for each of the API's queries:
test_channel_query_plans.py)."""

from __future__ import annotations

import functools
import hashlib
import io
import random

import pytest

from channel.app import create_app
from channel.artifacts import ArtifactStore, ArtifactTooLarge
from channel.models import output_digest
from channel.store import ResultStore
from tests.auth_support import receipt_headers

AUTH = {"Authorization": "Bearer t"}  # the user token: queries and downloads
KEY = {"task_id": "t1", "helper_id": "h1", "attempt": 1, "name": "logs/out.log"}
OCTET_TYPE = {"Content-Type": "application/octet-stream"}
OCTET = {**receipt_headers(KEY, "t"), **OCTET_TYPE}  # a helper uploading KEY's attempt
CHUNK = 1024  # small GridFS chunks, so a few KiB span several


def data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@functools.cache
def _mongomock_gridfs() -> None:
    import mongomock.gridfs

    mongomock.gridfs.enable_gridfs_integration()


@pytest.fixture
def db(mongo_db):
    if type(mongo_db).__module__.startswith("mongomock"):
        _mongomock_gridfs()
    return mongo_db


@pytest.fixture
def artifacts(db) -> ArtifactStore:
    store = ArtifactStore(db, chunk_size=CHUNK)
    store.ensure_indexes()
    return store


def stored(store: ArtifactStore) -> tuple[int, int]:
    return store.files.count_documents({}), store.chunks.count_documents({})


class TestArtifactStore:
    def test_ensure_indexes_is_idempotent_and_the_key_unique(self, db):
        store = ArtifactStore(db)
        store.ensure_indexes()
        store.ensure_indexes()
        info = db["artifacts.files"].index_information()
        assert info["one_artifact_per_name"].get("unique") is True
        assert "by_task_attempt" in info

    def test_put_streams_chunks_and_download_gives_the_bytes_back(self, artifacts, clock):
        body = data(5 * CHUNK + 7)
        doc, created = artifacts.put(KEY, io.BytesIO(body), clock(), max_bytes=10 * CHUNK)
        assert created is True
        assert doc == {
            **KEY,
            "artifact_id": doc["artifact_id"],
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "uploaded_at": clock(),
        }
        assert stored(artifacts) == (1, 6)
        found, blocks = artifacts.download(doc["artifact_id"])
        assert found == doc and b"".join(blocks) == body
        assert artifacts.find(KEY) == doc

    def test_an_empty_artifact_is_an_artifact(self, artifacts, clock):
        doc, _ = artifacts.put(KEY, io.BytesIO(b""), clock(), max_bytes=10)
        assert doc["size"] == 0 and doc["sha256"] == hashlib.sha256(b"").hexdigest()
        assert b"".join(artifacts.download(doc["artifact_id"])[1]) == b""

    def test_the_same_key_twice_is_stored_once(self, artifacts, clock):
        """Also the race: both uploads streamed before either was stored."""
        first, _ = artifacts.put(KEY, io.BytesIO(data(3 * CHUNK)), clock(), max_bytes=10**6)
        clock.advance(60)
        again, created = artifacts.put(KEY, io.BytesIO(b"other"), clock(), max_bytes=10**6)
        assert created is False and again == first
        assert stored(artifacts) == (1, 3)

    @pytest.mark.parametrize("size", [4 * CHUNK + 1, 10 * CHUNK])
    def test_too_large_leaves_nothing_behind(self, artifacts, clock, size):
        with pytest.raises(ArtifactTooLarge) as info:
            artifacts.put(KEY, io.BytesIO(data(size)), clock(), max_bytes=4 * CHUNK)
        assert info.value.status == 413 and info.value.detail == {"max_bytes": 4 * CHUNK}
        assert stored(artifacts) == (0, 0)

    def test_exactly_the_limit_is_accepted(self, artifacts, clock):
        doc, _ = artifacts.put(KEY, io.BytesIO(data(4 * CHUNK)), clock(), max_bytes=4 * CHUNK)
        assert doc["size"] == 4 * CHUNK

    def test_an_upload_cut_off_leaves_nothing_behind(self, artifacts, clock):
        class CutOff(io.RawIOBase):
            reads = 0

            def read(self, n=-1):
                self.reads += 1
                if self.reads > 3:
                    raise ConnectionResetError("client went away")
                return data(n)

        with pytest.raises(ConnectionResetError):
            artifacts.put(KEY, CutOff(), clock(), max_bytes=10**6)
        assert stored(artifacts) == (0, 0)

    def test_for_task_filters_and_orders_by_helper_attempt_name(self, artifacts, clock):
        for helper, attempt, name in [
            ("h2", 1, "b"),
            ("h1", 2, "a"),
            ("h1", 1, "z"),
            ("h1", 1, "a"),
        ]:
            key = dict(KEY, helper_id=helper, attempt=attempt, name=name)
            artifacts.put(key, io.BytesIO(b"x"), clock(), max_bytes=10)
        artifacts.put(dict(KEY, task_id="other"), io.BytesIO(b"x"), clock(), max_bytes=10)

        def listed(**kw):
            return [
                (a["helper_id"], a["attempt"], a["name"]) for a in artifacts.for_task("t1", **kw)
            ]

        assert listed() == [("h1", 1, "a"), ("h1", 1, "z"), ("h1", 2, "a"), ("h2", 1, "b")]
        assert listed(helper_id="h1", attempt=1) == [("h1", 1, "a"), ("h1", 1, "z")]
        assert listed(attempt=1) == [("h1", 1, "a"), ("h1", 1, "z"), ("h2", 1, "b")]
        assert artifacts.for_task("nobody") == []

    @pytest.mark.parametrize("artifact_id", ["f" * 24, "not-an-id", ""])
    def test_download_of_an_unknown_artifact_is_none(self, artifacts, artifact_id):
        assert artifacts.download(artifact_id) is None

    def test_attach_gives_each_result_the_artifacts_of_its_attempt(self, artifacts, clock):
        a1, _ = artifacts.put(KEY, io.BytesIO(b"1"), clock(), max_bytes=10)
        a2, _ = artifacts.put(dict(KEY, name="a.txt"), io.BytesIO(b"22"), clock(), max_bytes=10)
        artifacts.put(dict(KEY, attempt=9), io.BytesIO(b"x"), clock(), max_bytes=10)
        results = [{"task_id": "t1", "helper_id": "h1", "attempt": n} for n in (1, 2)]
        attached = artifacts.attach(results)
        summary = ("artifact_id", "name", "size", "sha256")
        assert attached[0]["artifacts"] == [{k: a[k] for k in summary} for a in (a2, a1)]
        assert attached[1]["artifacts"] == []
        assert "artifacts" not in results[0]


@pytest.fixture
def mock_gridfs_db(mock_db):
    _mongomock_gridfs()
    return mock_db


def make_app(db, clock, **config):
    results = ResultStore(db)
    results.ensure_indexes()
    store = ArtifactStore(db, chunk_size=CHUNK)
    store.ensure_indexes()
    return create_app(config, store=results, token="t", clock=clock, artifacts=store)


@pytest.fixture
def client(mock_gridfs_db, clock):
    return make_app(mock_gridfs_db, clock, MAX_ARTIFACT_BYTES=8 * CHUNK).test_client()


def upload(client, body=b"hello", headers=None, **params):
    """Upload as a helper does: with the receipt of the attempt it names."""
    query = {**KEY, **params}
    if headers is None:
        headers = {**receipt_headers(query, "t"), **OCTET_TYPE}
    return client.post("/api/v1/artifacts", query_string=query, data=body, headers=headers)


def post_result(client, doc):
    """Post a result as a helper does: with the receipt of its attempt."""
    return client.post("/api/v1/results", json=doc, headers=receipt_headers(doc, "t"))


def result(**fields) -> dict:
    doc = {
        "task_id": "t1",
        "helper_id": "h1",
        "attempt": 1,
        "image": "busybox:1.36",
        "status": "succeeded",
        "exit_code": 0,
        "output_digest": output_digest(b""),
        "finished_at": "2024-05-01T11:59:30+00:00",
        "sent_at": "2024-05-01T11:59:31+00:00",
    }
    doc.update(fields)
    return doc


class TestArtifactApi:
    def test_upload_201_then_200_with_the_first_one(self, client, clock):
        body = data(3 * CHUNK + 5)
        first = upload(client, body)
        assert first.status_code == 201
        doc = first.get_json()
        assert doc == {
            **KEY,
            "artifact_id": doc["artifact_id"],
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "uploaded_at": clock().isoformat(),
        }
        clock.advance(5)
        again = upload(client, b"different bytes")
        assert again.status_code == 200 and again.get_json() == doc
        listed = client.get("/api/v1/artifacts?task_id=t1", headers=AUTH).get_json()
        assert listed == {"artifacts": [doc], "next": None}

    def test_download_streams_the_bytes_with_their_headers(self, client):
        body = data(5 * CHUNK)
        doc = upload(client, body).get_json()
        resp = client.get(f"/api/v1/artifacts/{doc['artifact_id']}", headers=AUTH)
        assert resp.status_code == 200 and resp.is_streamed
        assert resp.headers["Content-Length"] == str(len(body))
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert resp.headers["Content-Disposition"] == 'attachment; filename="out.log"'
        assert resp.get_data() == body

    def test_a_non_ascii_name_downloads_under_both_spellings(self, client):
        doc = upload(client, name="résumé.txt").get_json()
        resp = client.get(f"/api/v1/artifacts/{doc['artifact_id']}", headers=AUTH)
        assert resp.headers["Content-Disposition"] == (
            "attachment; filename=\"resume.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
        )

    @pytest.mark.parametrize("artifact_id", ["f" * 24, "nope"])
    def test_unknown_artifact_is_404_json(self, client, artifact_id):
        resp = client.get(f"/api/v1/artifacts/{artifact_id}", headers=AUTH)
        assert resp.status_code == 404
        assert resp.get_json() == {"error": "no such artifact", "detail": artifact_id}

    @pytest.mark.parametrize(
        "name",
        ["", "/etc/passwd", "..", "../x", "a/../../b", "a//b", "logs/", "./a", "a\\b", "a\x00b"]
        + ["x" * 256],
    )
    def test_a_name_that_is_not_a_relative_path_is_422(self, client, name):
        resp = upload(client, name=name)
        assert resp.status_code == 422
        assert resp.get_json()["error"] == "invalid field(s): name"
        assert (
            client.get("/api/v1/artifacts?task_id=t1", headers=AUTH).get_json()["artifacts"] == []
        )

    def test_a_long_name_within_the_limit_is_fine(self, client):
        assert upload(client, name="d/" + "x" * 253).status_code == 201

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"task_id": None}, "task_id"),
            ({"helper_id": ""}, "helper_id"),
            ({"attempt": "one"}, "attempt"),
            ({"attempt": 0}, "attempt"),
            ({"attempt": 2**64}, "attempt"),
            ({"name": None}, "name"),
        ],
    )
    def test_bad_or_missing_parameters_are_422_naming_them(self, client, params, field):
        query = {k: v for k, v in {**KEY, **params}.items() if v is not None}
        resp = client.post("/api/v1/artifacts", query_string=query, data=b"x", headers=OCTET)
        assert resp.status_code == 422
        assert [p["field"] for p in resp.get_json()["detail"]] == [field]

    @pytest.mark.parametrize("content_type", [None, "application/json", "multipart/form-data"])
    def test_a_body_that_is_not_raw_bytes_is_415(self, client, content_type):
        receipt = receipt_headers(KEY, "t")
        headers = {**receipt, **({"Content-Type": content_type} if content_type else {})}
        resp = upload(client, headers=headers)
        assert resp.status_code == 415
        assert "application/octet-stream" in resp.get_json()["detail"]

    def test_over_the_limit_is_413_and_stores_nothing(self, client, mock_gridfs_db):
        resp = upload(client, data(8 * CHUNK + 1))
        assert resp.status_code == 413
        assert resp.get_json()["detail"] == {"max_bytes": 8 * CHUNK}
        assert upload(client, data(8 * CHUNK)).status_code == 201

    def test_chunked_over_the_limit_is_413_and_leaves_no_chunk(self, client, mock_gridfs_db):
        resp = client.post(
            "/api/v1/artifacts",
            query_string=KEY,
            input_stream=io.BytesIO(data(20 * CHUNK)),
            headers={**OCTET, "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert resp.status_code == 413
        assert mock_gridfs_db["artifacts.files"].count_documents({}) == 0
        assert mock_gridfs_db["artifacts.chunks"].count_documents({}) == 0

    def test_artifacts_may_exceed_the_json_body_limit_and_json_may_not(self, mock_gridfs_db, clock):
        client = make_app(
            mock_gridfs_db, clock, MAX_CONTENT_LENGTH=2 * CHUNK, MAX_ARTIFACT_BYTES=8 * CHUNK
        ).test_client()
        assert upload(client, data(6 * CHUNK)).status_code == 201
        big = result(stdout="x" * 3 * CHUNK)
        assert post_result(client, big).status_code == 413

    def test_listing_filters_by_helper_and_attempt(self, client):
        for helper, attempt in [("h1", 1), ("h1", 2), ("h2", 1)]:
            upload(client, helper_id=helper, attempt=attempt)

        def listed(query):
            resp = client.get(f"/api/v1/artifacts?{query}", headers=AUTH)
            return [(a["helper_id"], a["attempt"]) for a in resp.get_json()["artifacts"]]

        assert listed("task_id=t1") == [("h1", 1), ("h1", 2), ("h2", 1)]
        assert listed("task_id=t1&helper_id=h1&attempt=2") == [("h1", 2)]
        assert listed("task_id=t1&attempt=1") == [("h1", 1), ("h2", 1)]
        assert client.get("/api/v1/artifacts", headers=AUTH).status_code == 400
        assert client.get("/api/v1/artifacts?task_id=t1&attempt=x", headers=AUTH).status_code == 400

    def test_artifact_routes_need_the_token(self, client):
        doc = upload(client).get_json()
        for resp in (
            upload(client, headers=OCTET_TYPE, name="b"),
            client.get("/api/v1/artifacts?task_id=t1"),
            client.get(f"/api/v1/artifacts/{doc['artifact_id']}"),
        ):
            assert resp.status_code == 401

    def test_every_result_carries_the_artifacts_of_its_attempt(self, client):
        art = upload(client, b"abc").get_json()
        summary = [{k: art[k] for k in ("artifact_id", "name", "size", "sha256")}]
        posted = post_result(client, result()).get_json()
        other = post_result(client, result(attempt=2)).get_json()
        assert posted["artifacts"] == summary and other["artifacts"] == []
        got = client.get(f"/api/v1/results/{posted['result_id']}", headers=AUTH).get_json()
        assert got["artifacts"] == summary
        page = client.get("/api/v1/results?task_id=t1", headers=AUTH).get_json()
        assert [r["artifacts"] for r in page["results"]] == [summary, []]


class TestResultFilters:
    @pytest.fixture
    def filled(self, client, clock):
        runs = [("h1", "succeeded"), ("h2", "failed"), ("h1", "failed"), ("h2", "succeeded")]
        for attempt, (helper, status) in enumerate(runs * 2, start=1):
            doc = result(helper_id=helper, attempt=attempt, status=status)
            assert post_result(client, doc).status_code == 201
            clock.advance(1)
        post_result(client, result(task_id="other", status="failed"))
        return client

    @staticmethod
    def pages(client, query: str) -> list[list[int]]:
        out, after = [], None
        while True:
            resp = client.get(
                f"/api/v1/results?task_id=t1&limit=2&{query}"
                + (f"&after={after}" if after else ""),
                headers=AUTH,
            )
            assert resp.status_code == 200, resp.get_json()
            out.append([r["attempt"] for r in resp.get_json()["results"]])
            after = resp.get_json()["next"]
            if after is None:
                return out

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("status=failed", [[2, 3], [6, 7]]),
            ("helper_id=h2", [[2, 4], [6, 8]]),
            ("helper_id=h1&status=failed", [[3, 7]]),
            ("helper_id=h1&status=failed&order=newest", [[7, 3]]),
            ("status=succeeded&order=newest", [[8, 5], [4, 1]]),
            ("status=cancelled", [[]]),
            ("helper_id=nobody", [[]]),
        ],
    )
    def test_filters_page_with_the_cursor(self, filled, query, expected):
        assert self.pages(filled, query) == expected

    @pytest.mark.parametrize(
        ("query", "mentions"),
        [("status=done", "status"), ("status=", "status"), ("helper_id=", "helper_id")],
    )
    def test_bad_filters_are_400_naming_them(self, client, query, mentions):
        resp = client.get(f"/api/v1/results?task_id=t1&{query}", headers=AUTH)
        assert resp.status_code == 400
        assert f"'{mentions}'" in resp.get_json()["error"]
