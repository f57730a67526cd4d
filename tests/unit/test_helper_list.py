"""Listing helpers a page at a time (GET /api/v1/helpers): the store's
offline helpers on every backend, then the route over mongomock."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

from seeker.api.app import create_app
from seeker.cli.commands import main as seeker_main
from seeker.client import SeekerClient
from seeker.control.dispatcher import Dispatcher
from seeker.control.operations import Seeker
from seeker.placement.capacity import is_online
from seeker.store.helpers import HelperStore, offline_in
from seeker.store.tasks import TaskStore
from serving.wsgi import BackgroundServer

AUTH = {"Authorization": "Bearer t"}
LIVENESS = timedelta(seconds=45)


def registration(name: str, **fields) -> dict:
    return {
        "helper_id": f"id-{name}",
        "name": name,
        "url": f"http://{name}:7072",
        "slots": 2,
        "resources": {"cpus": 8, "memory_available": 16 * 1024**3, "gpus": []},
        **fields,
    }


@pytest.fixture
def helpers(mongo_db, clock) -> HelperStore:
    store = HelperStore(mongo_db, clock=clock)
    store.ensure_indexes()
    return store


def test_the_roster_tells_exactly_the_helpers_offline(helpers, clock):
    """Every mix of heartbeat interval, silence and poll connection, read
    from the roster's fields alone, on every backend."""
    beats = [None, 10, 22, 23, 40, 100, 260, 500]
    silences = [0, 30, 44, 46, 90, 199, 201, 520, 1001, 3600]
    start = clock()
    docs = []
    for i, (beat, silence) in enumerate((b, s) for b in beats for s in silences):
        name = f"h{i:03d}"
        fields = {} if beat is None else {"heartbeat": beat}
        helpers.register(registration(name, **fields), start - timedelta(seconds=silence))
        docs.append(f"id-{name}")
    # pulling helpers: a poll dropped and not back, dropped and back, never dropped
    for name, gone, back in [("p-gone", 5, None), ("p-back", 20, 10), ("p-live", None, 3)]:
        helpers.register(registration(name, mode="pull", url=None), start)
        if gone is not None:
            helpers.poll_gone(f"id-{name}", start - timedelta(seconds=gone))
        if back is not None:
            helpers.poll_connected(f"id-{name}", start - timedelta(seconds=back))
    everyone = {h["helper_id"]: h for h in helpers.list()}
    offline = {i for i, h in everyone.items() if not is_online(h, start, LIVENESS)}
    assert "id-p-gone" in offline and not {"id-p-back", "id-p-live"} & offline
    assert len(offline) > 20 and len(everyone) - len(offline) > 20  # both kinds
    assert offline_in(helpers.roster(), start, LIVENESS) == offline


class Env:
    def __init__(self, db, clock):
        self.clock = clock
        self.tasks, self.helpers = TaskStore(db), HelperStore(db, clock=clock)
        self.tasks.ensure_indexes()
        self.helpers.ensure_indexes()
        self.seeker = Seeker(self.tasks, self.helpers, clock=clock, kick=lambda: None)
        self.client = create_app(seeker=self.seeker, token="t").test_client()
        self.dispatcher = Dispatcher(self.tasks, self.helpers, push=lambda h, a: None, clock=clock)

    def register(self, name: str, **fields) -> None:
        resp = self.client.post("/api/v1/helpers", json=registration(name, **fields), headers=AUTH)
        assert resp.status_code == 200, resp.get_json()

    def list(self, query: str = "") -> dict:
        resp = self.client.get(f"/api/v1/helpers{query}", headers=AUTH)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()


@pytest.fixture
def env(mock_db, clock) -> Env:
    return Env(mock_db, clock)


def names(page: dict) -> list[str]:
    return [h["name"] for h in page["helpers"]]


def test_the_list_comes_a_page_at_a_time_with_the_fleets_counts(env):
    for i in range(5):
        env.register(f"h{i}")
    first = env.list("?limit=2")
    assert names(first) == ["h0", "h1"] and first["next"] == "h1"
    assert (first["total"], first["offline"]) == (5, 0)
    second = env.list("?limit=2&after=h1")
    assert names(second) == ["h2", "h3"] and second["next"] == "h3"
    last = env.list("?limit=2&after=h3")
    assert names(last) == ["h4"] and last["next"] is None
    assert names(env.list()) == [f"h{i}" for i in range(5)]  # 100 to a page unless asked
    assert env.list("?after=h4") == {"helpers": [], "next": None, "total": 5, "offline": 0}


def test_online_and_offline_as_each_helpers_deadline_says(env, clock):
    env.register("often")  # the seeker's 45 s liveness
    env.register("seldom")
    env.helpers.set_heartbeat("id-seldom", 100)  # a large fleet's: two of them, 200 s
    env.register("zz-silent")
    clock.advance(60)
    env.register("zz-silent")  # heard from again: online
    every = env.list()
    assert {h["name"]: h["online"] for h in every["helpers"]} == {
        "often": False,
        "seldom": True,
        "zz-silent": True,
    }
    assert (every["total"], every["offline"]) == (3, 1)
    assert names(env.list("?online=false")) == ["often"]
    online = env.list("?online=true&limit=1")
    assert names(online) == ["seldom"] and online["next"] == "seldom"
    assert names(env.list("?online=true&limit=1&after=seldom")) == ["zz-silent"]
    assert env.seeker.helper_list(online=False)["helpers"][0]["name"] == "often"


def test_a_filtered_page_spread_over_the_fleet_is_read_by_id(env, clock):
    for name in "abcdefg":
        env.register(name)
    clock.advance(60)
    for name in "bcdef":
        env.register(name)
    offline = env.list("?online=false")
    assert names(offline) == ["a", "g"] and offline["offline"] == 2
    assert [h["url"] for h in offline["helpers"]] == ["http://a:7072", "http://g:7072"]
    assert names(env.list("?online=true&limit=4")) == ["b", "c", "d", "e"]


def test_a_page_reads_the_live_assignments_of_its_own_helpers(env, monkeypatch):
    for name in ("a", "b", "c"):
        env.register(name)
    resp = env.client.post(
        "/api/v1/tasks",
        json={"image": "busybox:1.36", "constraints": {}, "name": "x"},
        headers=AUTH,
    )
    assert resp.status_code == 201
    env.dispatcher.dispatch_pending()
    asked = []
    reads = env.tasks.live_assignment_docs
    monkeypatch.setattr(
        env.tasks,
        "live_assignment_docs",
        lambda **kw: asked.append(kw.get("helper_ids")) or reads(**kw),
    )
    pages = [env.list("?limit=2"), env.list("?after=b")]
    assert asked == [["id-a", "id-b"], ["id-c"]]
    running = {h["name"]: h["running"] for p in pages for h in p["helpers"]}
    assert sorted(running.values()) == [0, 0, 1]


def test_the_client_reads_every_page(env, clock):
    for i in range(5):
        env.register(f"h{i}")
    clock.advance(60)
    env.register("h3")
    server = BackgroundServer(env.client.application, "127.0.0.1", 0).start()
    try:
        client = SeekerClient(server.url, "t")
        assert [h["name"] for h in client.helpers(page=2)] == [f"h{i}" for i in range(5)]
        assert [h["name"] for h in client.helpers(online=True, page=2)] == ["h3"]
        first = client.helpers_page(2, online=False)
        assert names(first) == ["h0", "h1"] and first["next"] == "h1"
        assert (first["total"], first["offline"]) == (5, 4)
        assert names(client.helpers_page(2, after="h1", online=False)) == ["h2", "h4"]
    finally:
        server.stop()


def test_one_helper_by_id_or_by_name(env, clock):
    env.register("gpu-7")
    env.register("id-gpu-7")  # a name that is another helper's id: the id wins
    by_name = env.client.get("/api/v1/helpers/gpu-7", headers=AUTH).get_json()
    assert (by_name["helper_id"], by_name["online"], by_name["running"]) == ("id-gpu-7", True, 0)
    assert "auth" not in by_name and by_name["gpu_use"] == []
    by_id = env.client.get("/api/v1/helpers/id-gpu-7", headers=AUTH).get_json()
    assert by_id == by_name
    gone = env.client.get("/api/v1/helpers/nope", headers=AUTH)
    assert gone.status_code == 404
    assert gone.get_json() == {
        "error": "no such helper",
        "detail": "nope is neither a helper's id nor a helper's name",
    }
    assert env.client.get("/api/v1/helpers/gpu-7").status_code == 401


def test_seeker_helpers_shows_one_or_those_offline(env, clock):
    for name in ("a", "b"):
        env.register(name)
    clock.advance(60)
    env.register("b")
    server = BackgroundServer(env.client.application, "127.0.0.1", 0).start()
    try:
        common = ["helpers", "--seeker-url", server.url, "--token", "t"]
        one = CliRunner().invoke(seeker_main, [*common, "b", "--json"])
        assert one.exit_code == 0, one.output
        assert json.loads(one.output)["name"] == "b"
        offline = CliRunner().invoke(seeker_main, [*common, "--offline", "--json"])
        assert [h["name"] for h in json.loads(offline.output)] == ["a"]
        table = CliRunner().invoke(seeker_main, [*common, "a"])
        assert table.exit_code == 0 and "offline" in table.output.splitlines()[1]
        missing = CliRunner().invoke(seeker_main, [*common, "zz"])
        assert missing.exit_code != 0 and "no such helper" in missing.output
    finally:
        server.stop()


@pytest.mark.parametrize(
    "query, message",
    [
        ("?limit=0", "'limit' must be between 1 and 1000"),
        ("?limit=1001", "'limit' must be between 1 and 1000"),
        ("?limit=ten", "'limit' must be an integer"),
        ("?after=no%20such%20name", "'after' is not a helper's name"),
        ("?online=maybe", "'online' must be true or false"),
    ],
)
def test_bad_queries_are_refused_with_what_to_do(env, query, message):
    env.register("h1")
    resp = env.client.get(f"/api/v1/helpers{query}", headers=AUTH)
    assert resp.status_code == 400
    assert message in resp.get_json()["error"]
    assert env.list()["total"] == 1
