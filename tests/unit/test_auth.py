"""Roles and receipts: who may call what, at the helper and the channel;
the Authenticator and the receipt itself."""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from channel.app import create_app as channel_app
from channel.models import output_digest
from channel.store import ResultStore
from helper.app import create_app as helper_app
from helper.executor import Executor
from serving import receipts
from serving.access import allow, require_auth
from serving.errors import install_error_handlers
from serving.principals import Authenticator, Principal
from tests.auth_support import WELL_FORMED_RECEIPT, bearer, receipt_for

TOKEN = "user-token"

# --- the Authenticator ---------------------------------------------------------------


def app_with(auth: Authenticator) -> Flask:
    app = Flask(__name__)
    install_error_handlers(app)
    require_auth(app, auth)
    app.add_url_rule("/mine", "mine", lambda: "user")
    app.add_url_rule("/theirs", "theirs", allow("join")(lambda: "join"))
    return app


def test_one_token_may_hold_several_roles():
    auth = Authenticator({"user": "same", "join": "same"})
    assert auth.authenticate("same") == Principal(frozenset({"user", "join"}))
    assert auth.authenticate("other") is None


def test_an_unset_token_grants_nothing():
    auth = Authenticator({"user": "u", "join": None})
    assert auth.authenticate("") is None and auth.authenticate("None") is None


def test_verifiers_are_asked_after_the_tokens():
    seen = []

    def verify(given):
        seen.append(given)
        return Principal(frozenset({"helper"}), "h1") if given == "cred" else None

    auth = Authenticator({"user": "u"}, (verify,))
    assert auth.authenticate("u").roles == {"user"} and seen == []
    assert auth.authenticate("cred").subject == "h1"


def test_401_for_an_unknown_secret_403_for_the_wrong_role():
    client = app_with(Authenticator({"user": "u", "join": "j"})).test_client()
    assert client.get("/mine").status_code == 401
    assert client.get("/mine", headers=bearer("nope")).status_code == 401
    assert client.get("/mine", headers=bearer("u")).status_code == 200
    resp = client.get("/theirs", headers=bearer("u"))
    assert resp.status_code == 403 and "needs a join credential" in resp.get_json()["detail"]
    assert client.get("/theirs", headers=bearer("j")).status_code == 200
    assert client.get("/mine", headers=bearer("j")).status_code == 403


def test_no_secret_reaches_the_log(caplog):
    caplog.set_level(logging.DEBUG)
    client = app_with(Authenticator({"user": "s3cret-user", "join": "s3cret-join"})).test_client()
    client.get("/mine", headers=bearer("s3cret-wrong"))
    client.get("/theirs", headers=bearer("s3cret-user"))
    assert "s3cret" not in caplog.text


# --- receipts -------------------------------------------------------------------------


def test_a_receipt_binds_task_helper_and_attempt():
    key = receipts.receipt_key(None, TOKEN)
    good = receipts.sign(key, "t1", "h1", 1)
    assert receipts.well_formed(good) and receipts.valid(key, good, "t1", "h1", 1)
    for other in (("t2", "h1", 1), ("t1", "h2", 1), ("t1", "h1", 2)):
        assert not receipts.valid(key, good, *other)
    assert not receipts.valid(receipts.receipt_key("explicit", TOKEN), good, "t1", "h1", 1)


def test_the_fields_cannot_be_shifted_into_each_other():
    key = receipts.receipt_key(None, TOKEN)
    assert receipts.sign(key, "t1", "h11", 1) != receipts.sign(key, "t1h", "11", 1)


def test_an_explicit_key_is_used_as_given():
    assert receipts.receipt_key("k", TOKEN) == b"k"
    assert receipts.receipt_key(None, TOKEN) != receipts.receipt_key(None, "other")


# --- the channel: results only with the receipt for that attempt -------------------------


@pytest.fixture
def channel(mock_db, clock):
    store = ResultStore(mock_db)
    store.ensure_indexes()
    return channel_app(store=store, token=TOKEN, clock=clock).test_client()


def result(**fields) -> dict:
    return {
        "task_id": "t1",
        "helper_id": "h1",
        "helper_name": "gpu-1",
        "attempt": 1,
        "image": "busybox",
        "status": "succeeded",
        "exit_code": 0,
        "stdout": "hi\n",
        "output_digest": output_digest(b"hi\n"),
        "finished_at": "2024-05-01T11:59:30+00:00",
        "sent_at": "2024-05-01T11:59:31+00:00",
        **fields,
    }


def post(channel, body: dict, secret: str):
    return channel.post("/api/v1/results", json=body, headers=bearer(secret))


def test_a_result_with_its_receipt_is_stored(channel):
    resp = post(channel, result(), receipt_for("t1", "h1", 1, TOKEN))
    assert resp.status_code == 201


@pytest.mark.parametrize(
    "secret",
    [
        receipt_for("t1", "h2", 1, TOKEN),  # another helper's
        receipt_for("t1", "h1", 2, TOKEN),  # another attempt's
        receipt_for("t9", "h1", 1, TOKEN),  # another task's
        receipt_for("t1", "h1", 1, "another-token"),  # another seeker's
        WELL_FORMED_RECEIPT,
    ],
)
def test_a_result_with_any_other_receipt_is_refused_and_nothing_stored(channel, secret):
    resp = post(channel, result(), secret)
    assert resp.status_code == 403, resp.get_json()
    assert "receipt does not match" in resp.get_json()["error"]
    listed = channel.get("/api/v1/results?task_id=t1", headers=bearer(TOKEN)).get_json()
    assert listed["results"] == []


def test_the_user_token_reads_results_but_cannot_post_one(channel):
    resp = post(channel, result(), TOKEN)
    assert resp.status_code == 403 and "receipt" in resp.get_json()["detail"]
    assert post(channel, result(), "rcpt1.nothex").status_code == 401
    receipt = receipt_for("t1", "h1", 1, TOKEN)
    assert post(channel, result(), receipt).status_code == 201
    assert channel.get("/api/v1/results?task_id=t1", headers=bearer(receipt)).status_code == 403
    assert channel.get("/api/v1/results?task_id=t1", headers=bearer(TOKEN)).status_code == 200


class NoArtifacts:
    """Stores nothing: the check comes before any storage."""

    def find(self, key):
        return None

    def put(self, key, stream, uploaded_at, max_bytes):
        return {"stored": key}, True

    def attach(self, docs):
        return docs


def test_an_artifact_needs_the_receipt_of_its_attempt(mock_db, clock):
    channel = channel_app(
        store=ResultStore(mock_db), token=TOKEN, clock=clock, artifacts=NoArtifacts()
    ).test_client()
    query = {"task_id": "t1", "helper_id": "h1", "attempt": 1, "name": "out.txt"}
    headers = {"Content-Type": "application/octet-stream"}

    def upload(secret):
        return channel.post(
            "/api/v1/artifacts",
            query_string=query,
            data=b"x",
            headers={**headers, **bearer(secret)},
        )

    assert upload(receipt_for("t1", "h2", 1, TOKEN)).status_code == 403
    assert upload(TOKEN).status_code == 403
    assert upload(receipt_for("t1", "h1", 1, TOKEN)).status_code == 201


# --- the helper: assignments only from its seeker ---------------------------------------


class FakeRuntime:
    def run(self, spec, on_started, on_pulling, on_exited=None):
        raise RuntimeError("not in this test")


@pytest.fixture
def helper():
    valid = ["cred-new", "cred-old"]
    executor = Executor(FakeRuntime(), None, "h1", "gpu-1", slots=0)
    app = helper_app(executor=executor, token=TOKEN, seeker_credentials=lambda: tuple(valid))
    return app.test_client(), valid


def assignment() -> dict:
    return {
        "task_id": "t1",
        "attempt": 1,
        "helper_id": "h1",
        "image": "busybox",
        "receipt": receipt_for("t1", "h1", 1, TOKEN),
    }


def test_the_helper_takes_assignments_only_with_its_seekers_credential(helper):
    client, valid = helper
    resp = client.post("/api/v1/assignments", json=assignment(), headers=bearer(TOKEN))
    assert resp.status_code == 403 and "seeker" in resp.get_json()["detail"]
    assert client.post("/api/v1/assignments", json=assignment()).status_code == 401
    resp = client.post("/api/v1/assignments", json=assignment(), headers=bearer("cred-bad"))
    assert resp.status_code == 401
    for cred in valid:  # the newest, and the one before while rotating
        resp = client.post("/api/v1/assignments", json=assignment(), headers=bearer(cred))
        assert resp.status_code == 429  # past the check: this helper has no slot
    assert client.delete("/api/v1/assignments/t1.1", headers=bearer(TOKEN)).status_code == 403
    valid.clear()  # re-registered elsewhere: nothing is good any more
    resp = client.post("/api/v1/assignments", json=assignment(), headers=bearer("cred-new"))
    assert resp.status_code == 401


def test_the_operator_token_reads_the_helpers_status(helper):
    client, _ = helper
    assert client.get("/api/v1/status", headers=bearer(TOKEN)).status_code == 200
    assert client.get("/api/v1/status", headers=bearer("cred-new")).status_code == 200


def test_an_assignment_without_a_receipt_is_422(helper):
    client, _ = helper
    body = {k: v for k, v in assignment().items() if k != "receipt"}
    resp = client.post("/api/v1/assignments", json=body, headers=bearer("cred-new"))
    assert resp.status_code == 422 and "receipt" in str(resp.get_json())
