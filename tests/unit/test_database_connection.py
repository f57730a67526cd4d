"""The client a service makes of its --mongo-url: a SecantusDB server's
writes are not sent as retryable (it scans its record of them at every
write); any other server's, or a URL's that says, are as pymongo makes them."""

from __future__ import annotations

import pymongo
import pytest
from pymongo.errors import OperationFailure

from serving.database import DatabaseConnection, names_retry_writes


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("mongodb://h:1/db", False),
        ("mongodb://h:1,h:2/db?replicaSet=rs&w=majority", False),
        ("mongodb://h:1/db?retryWrites=true", True),
        ("mongodb://h:1/?w=1&RETRYWRITES=false", True),
        ("mongodb://h:1/db?retryReads=false", False),
    ],
)
def test_a_url_names_retry_writes_in_any_case(url, named):
    assert names_retry_writes(url) is named


def _url(client: pymongo.MongoClient, query: str = "") -> str:
    host, port = client.address
    return f"mongodb://{host}:{port}/{query}"


def test_a_secantus_server_gets_plain_writes_and_they_are_written(secantus_client, tmp_path):
    conn = DatabaseConnection(_url(secantus_client), tmp_path)
    try:
        assert conn.client.options.retry_writes is True  # nothing asked yet
        db = conn.database("test_plain_writes")
        assert conn.client.options.retry_writes is False
        db.things.insert_one({"_id": 1})
        assert db.things.find_one({"_id": 1}) == {"_id": 1}
        conn.database("test_plain_writes")  # asked once
        assert conn.client.options.retry_writes is False
    finally:
        secantus_client.drop_database("test_plain_writes")
        conn.close()


def test_a_url_that_names_retry_writes_is_taken_as_it_says(secantus_client, tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(DatabaseConnection, "_single_node_writes", lambda self: asked.append(1))
    conn = DatabaseConnection(_url(secantus_client, "?retryWrites=true"), tmp_path)
    try:
        conn.database("x")
        assert conn.client.options.retry_writes is True
        assert asked == []
    finally:
        conn.close()


@pytest.mark.parametrize(
    "answer",
    [{"version": "8.0.4", "ok": 1.0}, OperationFailure("not authorized on admin", 13)],
    ids=["another server", "buildInfo refused"],
)
def test_any_other_server_keeps_retryable_writes(tmp_path, monkeypatch, answer):
    def command(self, name, *args, **kwargs):
        assert name == "buildInfo"
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(pymongo.database.Database, "command", command)
    conn = DatabaseConnection("mongodb://127.0.0.1:9/x", tmp_path)
    try:
        before = conn.client
        conn.database("x")
        assert conn.client is before
        assert conn.client.options.retry_writes is True
    finally:
        conn.close()
