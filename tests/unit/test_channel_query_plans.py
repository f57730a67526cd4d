"""The plan the database chooses for every query the channel's API makes
(SecantusDB, and MongoDB when TEST_MONGO_URL is set): each uses an index, and
a page of results is one query for their artifacts."""

from __future__ import annotations

import hashlib
import io
import os

import pymongo
import pytest
from pymongo import monitoring
from test_channel_artifacts import (
    AUTH,
    CHUNK,
    KEY,
    OCTET,
    data,
    make_app,
    post_result,
    result,
    upload,
)

from channel.artifacts import ArtifactStore
from channel.inputs import InputStore

TEST_MONGO_URL = os.environ.get("TEST_MONGO_URL")
NO_QUERY = {"insert", "createIndexes", "listIndexes", "getMore", "killCursors", "endSessions"}


class Recorder(monitoring.CommandListener):
    def __init__(self):
        self.on = False
        self.commands: list[tuple[str, dict]] = []

    def started(self, event):
        if self.on:
            self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass

    def finds(self, collection: str) -> int:
        return sum(1 for name, c in self.commands if name == "find" and c["find"] == collection)


@pytest.fixture(params=["secantus"] + (["mongodb"] if TEST_MONGO_URL else []))
def recorded(request, clock):
    """An app over a real server whose every command is recorded, and a
    client without the recorder for explaining them."""
    plain = request.getfixturevalue(f"{request.param}_client")
    host, port = plain.address
    recorder = Recorder()
    watched = pymongo.MongoClient(host, port, tz_aware=True, event_listeners=[recorder])
    name = f"test_explain_{os.urandom(6).hex()}"
    app = make_app(watched[name], clock, MAX_ARTIFACT_BYTES=8 * CHUNK)
    recorder.on = True
    yield app.test_client(), recorder, plain[name]
    watched.close()
    plain.drop_database(name)


def exercise_every_query(client) -> None:
    """Every route, every filter and order, a cursor, a duplicate, a refusal."""
    art = upload(client, data(3 * CHUNK)).get_json()
    assert upload(client, b"again").status_code == 200
    chunked = {**OCTET, "Transfer-Encoding": "chunked"}
    too_big = client.post(
        "/api/v1/artifacts",
        query_string={**KEY, "name": "big"},
        input_stream=io.BytesIO(data(20 * CHUNK)),
        headers=chunked,
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert too_big.status_code == 413
    posted = []
    for attempt, (helper, status) in enumerate([("h1", "succeeded"), ("h2", "failed")] * 2, 1):
        doc = result(helper_id=helper, attempt=attempt, status=status)
        posted.append(post_result(client, doc).get_json())
    assert post_result(client, result()).status_code == 200
    for status in ("", "&status=failed"):
        for helper in ("", "&helper_id=h2"):
            for order in ("oldest", "newest"):
                query = f"task_id=t1&limit=1&order={order}{status}{helper}"
                page = client.get(f"/api/v1/results?{query}", headers=AUTH).get_json()
                client.get(f"/api/v1/results?{query}&after={page['next']}", headers=AUTH)
    client.get(f"/api/v1/results/{posted[0]['result_id']}", headers=AUTH)
    client.get(f"/api/v1/results/{'0' * 24}", headers=AUTH)
    for query in ("", "&helper_id=h1", "&helper_id=h1&attempt=1", "&attempt=1"):
        client.get(f"/api/v1/artifacts?task_id=t1{query}", headers=AUTH)
    assert client.get(f"/api/v1/artifacts/{art['artifact_id']}", headers=AUTH).get_data()
    client.get(f"/api/v1/artifacts/{'0' * 24}", headers=AUTH)


def plan_stages(plan) -> list[str]:
    """Every stage named anywhere in a plan (classic or slot-based layout)."""
    if isinstance(plan, dict):
        own = [plan["stage"]] if isinstance(plan.get("stage"), str) else []
        return own + [s for v in plan.values() for s in plan_stages(v)]
    if isinstance(plan, list):
        return [s for v in plan for s in plan_stages(v)]
    return []


def queries(commands) -> list[tuple[str, dict, dict | None]]:
    """(collection, filter, sort) of every find, and of every delete's match."""
    out = []
    for name, cmd in commands:
        if name in NO_QUERY:
            continue
        assert name in ("find", "delete"), f"the API sent {name!r}: explain it in this test too"
        if name == "find":
            out.append((cmd["find"], cmd.get("filter", {}), cmd.get("sort")))
        else:
            out.extend((cmd["delete"], d["q"], None) for d in cmd["deletes"])
    return out


class TestQueryPlans:
    def test_every_query_the_api_makes_uses_an_index(self, recorded):
        client, recorder, db = recorded
        exercise_every_query(client)
        seen, checked = set(), []
        for collection, query, sort in queries(recorder.commands):
            if (key := repr((collection, query, sort))) in seen:
                continue
            seen.add(key)
            find = {"find": collection, "filter": query, **({"sort": sort} if sort else {})}
            explained = db.command({"explain": find, "verbosity": "queryPlanner"})
            stages = plan_stages(explained["queryPlanner"]["winningPlan"])
            where = f"{collection} {query} sort={sort}: {stages}"
            assert "COLLSCAN" not in stages, where
            assert any("IXSCAN" in s or s == "IDHACK" for s in stages), where
            checked.append(collection)
        assert {"results", "artifacts.files", "artifacts.chunks"} <= set(checked)
        assert len(seen) >= 20

    def test_an_upload_asks_nothing_without_a_filter(self, recorded, clock):
        # pymongo's GridIn asked whether each collection of the bucket was
        # empty at every upload, which SecantusDB answers by reading every
        # document (bench/findings.md 50); ensure_indexes made its indexes
        client, recorder, db = recorded
        upload(client, data(2 * CHUNK))
        inputs = InputStore(db, ArtifactStore(db))
        inputs.ensure_indexes()
        body = b"an input"
        inputs.put("in.txt", hashlib.sha256(body).hexdigest(), io.BytesIO(body), clock(), 10**6)
        unfiltered = [
            (name, c) for name, c in recorder.commands if name == "find" and not c.get("filter")
        ]
        assert unfiltered == []

    def test_a_page_of_results_is_one_query_for_their_artifacts(self, recorded):
        client, recorder, _ = recorded
        for attempt in range(1, 31):
            upload(client, b"a", attempt=attempt, helper_id=f"h{attempt % 3}", name="a")
            upload(client, b"b", attempt=attempt, helper_id=f"h{attempt % 3}", name="b")
            doc = result(helper_id=f"h{attempt % 3}", attempt=attempt)
            post_result(client, doc)
        recorder.commands.clear()
        page = client.get("/api/v1/results?task_id=t1&limit=25", headers=AUTH).get_json()
        assert [len(r["artifacts"]) for r in page["results"]] == [2] * 25
        assert (recorder.finds("results"), recorder.finds("artifacts.files")) == (1, 1)
