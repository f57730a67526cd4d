"""The channel's REST API through Flask's test client, over mongomock."""

from __future__ import annotations

import json

import pytest
from dispatch_fakes import Counting

from channel.app import create_app
from channel.artifacts import ArtifactStore
from channel.models import output_digest
from channel.store import ResultStore
from tests.auth_support import WELL_FORMED_RECEIPT, bearer, receipt_headers

AUTH = {"Authorization": "Bearer t"}  # the user token: queries


@pytest.fixture
def store(results) -> ResultStore:  # conftest's, named as these tests name it
    return results


@pytest.fixture
def client(channel):
    return channel


def body(**fields) -> dict:
    b = {
        "task_id": "t1",
        "helper_id": "h1",
        "helper_name": "gpu-1",
        "attempt": 1,
        "image": "busybox:1.36",
        "status": "succeeded",
        "exit_code": 0,
        "stdout": "hi\n",
        "output_digest": output_digest(b"hi\n"),
        "started_at": "2024-05-01T11:59:00+00:00",
        "finished_at": "2024-05-01T11:59:30+00:00",
        "sent_at": "2024-05-01T11:59:31+00:00",
    }
    b.update(fields)
    return b


def post(client, payload, **kw):
    """Post as a helper does, with the receipt for the attempt the body names
    (a body that names none: a well-formed receipt, checked after the body)."""
    if isinstance(payload, dict) and {"task_id", "helper_id", "attempt"} <= payload.keys():
        headers = receipt_headers(payload, "t")
    else:
        headers = bearer(WELL_FORMED_RECEIPT)
    return client.post("/api/v1/results", json=payload, headers=headers, **kw)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic t"}, {"Authorization": "t"}],
)
def test_requests_without_the_right_token_are_401(client, headers):
    for resp in (
        client.post("/api/v1/results", json=body(), headers=headers),
        client.get("/api/v1/results?task_id=t1", headers=headers),
    ):
        assert resp.status_code == 401
        assert resp.get_json()["error"] in ("missing token", "invalid token")


def test_unauthorized_post_stores_nothing(client, store):
    client.post("/api/v1/results", json=body(), headers={"Authorization": "Bearer x"})
    assert store.results.count_documents({}) == 0


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/healthz"])
def test_healthz_is_open(client, path):
    resp = client.get(path)
    assert resp.status_code == 200
    assert resp.get_json() == {"ok": True, "service": "channel"}


def test_post_result_201_then_200_on_repeat(client, clock):
    first = post(client, body())
    assert first.status_code == 201
    stored = first.get_json()
    assert stored["received_at"] == clock().isoformat()
    assert stored["status"] == "succeeded" and stored["stdout"] == "hi\n"
    assert "_id" not in stored
    clock.advance(60)
    again = post(client, body(stdout="changed"))
    assert again.status_code == 200
    assert again.get_json()["result_id"] == stored["result_id"]
    assert again.get_json()["stdout"] == "hi\n"


def test_a_result_sent_after_no_artifacts_answers_without_looking_for_them(mock_db, store, clock):
    artifacts = ArtifactStore(mock_db)
    app = create_app(store=store, token="t", clock=clock, artifacts=artifacts)
    client = app.test_client()
    artifacts.files = looked = Counting(artifacts.files)
    resp = post(client, body(artifact_count=0))
    assert resp.status_code == 201 and resp.get_json()["artifacts"] == []
    assert looked.calls == []
    assert "artifact_count" not in store.results.find_one({"task_id": "t1"})  # not stored
    resp = post(client, body(task_id="t2", artifact_count=2))  # or unsaid: looked for
    assert resp.status_code == 201 and looked.calls == ["find"]
    assert "artifact_count" not in resp.get_json()


def test_malformed_json_is_400(client, store):
    resp = client.post(
        "/api/v1/results",
        data=b'{"task_id": ',
        headers={**bearer(WELL_FORMED_RECEIPT), "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "malformed JSON"
    assert store.results.count_documents({}) == 0


@pytest.mark.parametrize(
    "payload, kind",
    [([1, 2], "array"), ("text", "string"), (3, "number"), (None, "null"), (True, "boolean")],
)
def test_json_that_is_not_an_object_is_400(client, store, payload, kind):
    resp = client.post(
        "/api/v1/results",
        data=json.dumps(payload),
        headers={**bearer(WELL_FORMED_RECEIPT), "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.get_json() == {"error": "expected a JSON object", "detail": f"got a JSON {kind}"}
    assert store.results.count_documents({}) == 0


def test_json_not_in_utf8_is_400(client, store):
    resp = client.post(
        "/api/v1/results",
        data=json.dumps(body()).encode("utf-16"),
        headers={**receipt_headers(body(), "t"), "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "malformed JSON"
    assert "UTF-8" in resp.get_json()["detail"]
    assert store.results.count_documents({}) == 0


def test_an_object_whose_field_is_wrong_is_422_not_400(client):
    resp = post(client, body(attempt="1"))  # strict: no "1" for 1
    assert resp.status_code == 422
    assert [p["field"] for p in resp.get_json()["detail"]] == ["attempt"]


def test_a_body_that_is_not_json_is_400(client):
    resp = client.post("/api/v1/results", data="task_id=t1", headers=bearer(WELL_FORMED_RECEIPT))
    assert resp.status_code == 400
    assert "JSON" in resp.get_json()["error"]


@pytest.mark.parametrize("missing", ["task_id", "output_digest", "finished_at"])
def test_missing_field_is_422_naming_it(client, missing):
    payload = body()
    del payload[missing]
    resp = post(client, payload)
    assert resp.status_code == 422
    problem = resp.get_json()
    assert missing in problem["error"]
    assert [p["field"] for p in problem["detail"]] == [missing]


def test_bad_digest_is_422(client):
    resp = post(client, body(output_digest="sha256:nothex"))
    assert resp.status_code == 422
    assert resp.get_json()["detail"][0]["field"] == "output_digest"


def test_an_attempt_too_large_for_the_database_is_422(client):
    resp = post(client, body(attempt=2**64))
    assert resp.status_code == 422


def _fill(client, clock, n):
    for attempt in range(1, n + 1):
        assert post(client, body(attempt=attempt)).status_code == 201
        clock.advance(1)
    post(client, body(task_id="other"))


def _get(client, query):
    return client.get(f"/api/v1/results?{query}", headers=AUTH)


def test_list_results_pages_by_cursor(client, clock):
    _fill(client, clock, 5)
    seen, after = [], None
    while True:
        query = "task_id=t1&limit=2" + (f"&after={after}" if after else "")
        resp = _get(client, query)
        assert resp.status_code == 200
        page = resp.get_json()
        seen.append([r["attempt"] for r in page["results"]])
        after = page["next"]
        if after is None:
            break
    assert seen == [[1, 2], [3, 4], [5]]


def test_list_results_newest_first(client, clock):
    _fill(client, clock, 3)
    page = _get(client, "task_id=t1&order=newest").get_json()
    assert [r["attempt"] for r in page["results"]] == [3, 2, 1]
    assert page["next"] is None


def test_list_results_of_unknown_task_is_empty(client):
    assert _get(client, "task_id=nobody").get_json() == {"results": [], "next": None}


@pytest.mark.parametrize(
    ("query", "mentions"),
    [
        ("", "task_id"),
        ("task_id=", "task_id"),
        ("task_id=t1&limit=ten", "limit"),
        ("task_id=t1&limit=0", "limit"),
        ("task_id=t1&limit=501", "limit"),
        ("task_id=t1&after=not-a-cursor", "after"),
        ("task_id=t1&order=sideways", "order"),
    ],
)
def test_bad_list_queries_are_400(client, query, mentions):
    resp = _get(client, query)
    assert resp.status_code == 400
    assert mentions in resp.get_json()["error"]


def test_get_result_by_id(client):
    stored = post(client, body()).get_json()
    resp = client.get(f"/api/v1/results/{stored['result_id']}", headers=AUTH)
    assert resp.status_code == 200
    assert resp.get_json()["task_id"] == "t1"


def test_unknown_result_is_404(client):
    resp = client.get("/api/v1/results/" + "0" * 24, headers=AUTH)
    assert resp.status_code == 404
    assert resp.get_json() == {"error": "no such result", "detail": "0" * 24}


def test_unknown_path_and_wrong_method_are_json(client):
    missing = client.get("/api/v1/nothing", headers=AUTH)
    assert missing.status_code == 404 and "error" in missing.get_json()
    wrong = client.delete("/api/v1/results", headers=AUTH)
    assert wrong.status_code == 405 and "error" in wrong.get_json()
