"""Shared fixtures for the unit tests: database backends, a fixed clock, fakes.

`mongo_db` runs a test against every store backend (after huey's storage tests):
mongomock (fast), SecantusDB over TCP (a real wire-protocol server) and, when
`TEST_MONGO_URL` is set, a real MongoDB. A backend that cannot be had is a skip,
except on CI (`CI=true`), where it is a failure.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone

import pymongo
import pytest
from dispatch_fakes import FakePush, GiB, add_helper

from channel.app import create_app as channel_app
from channel.store import ResultStore
from seeker.control.dispatcher import Dispatcher
from seeker.control.health import HelperHealth
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore
from serving.database import stop_embedded
from serving.wsgi import BackgroundServer
from tests.http_servers import PROXY_VARS, echo_app

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")  # as tests/requirements.py
TEST_MONGO_URL = os.environ.get("TEST_MONGO_URL")
BACKENDS = ["mongomock", "secantus"] + (["mongodb"] if TEST_MONGO_URL else [])
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def require(what: str, why: str):
    """A test cannot run without `what`: skip it, or fail it on CI."""
    message = f"{what} is not available: {why}"
    if ON_CI:
        pytest.fail(f"{message} (CI=true: required, not skipped)")
    pytest.skip(message)


class FakeClock:
    """A timezone-aware UTC clock that only moves when told to."""

    def __init__(self, start: datetime = T0):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _mongomock_db():
    try:
        import mongomock
    except ImportError as exc:
        require("mongomock", str(exc))
    return mongomock.MongoClient(tz_aware=True)[f"test_{uuid.uuid4().hex}"]


@pytest.fixture
def mock_db():
    """A fresh mongomock database, for tests that are not about the backend."""
    return _mongomock_db()


@pytest.fixture(scope="session")
def secantus_client(tmp_path_factory):
    """One SecantusDB server for the whole session, and a client on it."""
    try:
        from secantus import SecantusDBServer
    except ImportError as exc:
        require("secantus (pip install 'seeker[dev]')", str(exc))
    server = SecantusDBServer(storage_path=str(tmp_path_factory.mktemp("sdb")))
    server.start()
    client = pymongo.MongoClient(server.uri, tz_aware=True, serverSelectionTimeoutMS=5000)
    yield client
    client.close()
    stop_embedded(server)


@pytest.fixture(scope="session")
def mongodb_client():
    client = pymongo.MongoClient(TEST_MONGO_URL, tz_aware=True, serverSelectionTimeoutMS=5000)
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as exc:
        client.close()  # asked for explicitly: unreachable is a failure, not a skip
        pytest.fail(f"TEST_MONGO_URL={TEST_MONGO_URL} is set but unreachable: {exc}")
    yield client
    client.close()


@pytest.fixture(params=BACKENDS)
def mongo_db(request):
    """A fresh, empty database on each backend in turn."""
    if request.param == "mongomock":
        yield _mongomock_db()
        return
    client_fixture = "secantus_client" if request.param == "secantus" else "mongodb_client"
    client = request.getfixturevalue(client_fixture)
    name = f"test_{uuid.uuid4().hex}"
    yield client[name]
    client.drop_database(name)


# --- stores over mongomock and the helper health built on them ---------------
# (the store contract tests define their own, over every database backend)


@pytest.fixture
def tasks(mock_db) -> TaskStore:
    return TaskStore(mock_db)


@pytest.fixture
def helpers(mock_db) -> HelperStore:
    return HelperStore(mock_db)


@pytest.fixture
def kicks() -> list[int]:
    """Each wake of the dispatcher, recorded."""
    return []


@pytest.fixture
def health(helpers, tasks, clock, kicks) -> HelperHealth:
    return HelperHealth(
        helpers,
        tasks,
        clock,
        purge_after=3,
        liveness=timedelta(seconds=45),
        kick=lambda: kicks.append(1),
    )


# the dispatcher over the stores above, pushing to a fake (tests/unit/dispatch_fakes.py)
@pytest.fixture
def push() -> FakePush:
    return FakePush()


@pytest.fixture
def dispatcher(tasks, helpers, push, clock, health) -> Dispatcher:
    return Dispatcher(
        tasks, helpers, push=push, clock=clock, health=health, liveness=timedelta(seconds=45)
    )


@pytest.fixture
def two_helpers(helpers, clock):
    """'big' ranks above 'small' (more memory left after a 1 GiB task)."""
    add_helper(helpers, clock, "big", memory=32 * GiB)
    add_helper(helpers, clock, "small", memory=4 * GiB)


# --- the JSON client's tests (test_http_client.py, test_http_connections.py) ---


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in (*PROXY_VARS, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


@pytest.fixture
def server():
    s = BackgroundServer(echo_app("server"), "127.0.0.1", 0, threads=2).start()
    yield s
    s.stop()


@pytest.fixture
def results(mock_db) -> ResultStore:
    store = ResultStore(mock_db)
    store.ensure_indexes()
    return store


@pytest.fixture
def channel(results, clock):
    return channel_app(store=results, token="t", clock=clock).test_client()
