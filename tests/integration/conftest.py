from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pymongo
import pytest

from seeker.client import SeekerClient
from seeker.control.credentials import HelperCredentials
from seeker.store.helpers import HelperStore
from serving.database import stop_embedded
from serving.http import ApiError
from tests.certs import CertFiles
from tests.integration.harness import (
    ROOT,
    Database,
    Service,
    free_port,
    free_ports,
    remove_containers,
    stop_all,
    wait_until,
)
from tests.requirements import require

IMAGE = "seeker-demo:latest"
# a task that prints its own id, half a second after it starts
ECHO_ID = ["sh", "-c", "sleep 0.5; echo $SEEKER_TASK_ID"]


@pytest.fixture(scope="session")
def docker_engine():
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # no socket, no permission, no engine
        require(False, f"no Docker engine reachable ({exc})")
    yield client
    client.close()


@pytest.fixture(scope="session")
def workload_image(docker_engine) -> str:
    """The busybox workload image, built offline from images/."""
    out = subprocess.run([str(ROOT / "images" / "build.sh"), IMAGE], capture_output=True, text=True)
    require(out.returncode == 0, f"cannot build {IMAGE}: {out.stderr.strip()}")
    return IMAGE


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory):
    """A real wire-protocol server: TEST_MONGO_URL, else SecantusDB on loopback."""
    if os.environ.get("TEST_MONGO_URL"):
        yield os.environ["TEST_MONGO_URL"]
        return
    try:
        from secantus import SecantusDBServer
    except ImportError:
        require(False, "SecantusDB is not installed (pip install -e '.[dev]')")
    server = SecantusDBServer(storage_path=str(tmp_path_factory.mktemp("secantus")))
    server.start()
    yield server.uri
    stop_embedded(server)


def db_url(mongo_url: str, name: str) -> str:
    """The server's URL with a database of this test's own in its path."""
    base, _, query = mongo_url.partition("?")
    return base.rstrip("/") + "/" + name + (f"?{query}" if query else "")


class Stack:
    """channel, seeker and helpers as separate processes on loopback; with
    `tls`, every one serves HTTPS with that certificate and trusts its CA
    (given through the environment, as SEEKER_TLS_CERT and the like)."""

    def __init__(
        self,
        base: Path,
        mongo_url: str,
        token: str,
        db_prefix: str,
        seeker_args: tuple[str, ...] = (),
        with_helper: bool = True,
        tls: CertFiles | None = None,
    ):
        self.token = token
        self.base = base
        self.seeker_db_url = db_url(mongo_url, db_prefix + "_seeker")
        self.scheme = "https" if tls else "http"
        self.verify = str(tls.ca) if tls else True
        ports = free_ports(2)
        self.channel_url, self.seeker_url = (f"{self.scheme}://127.0.0.1:{p}" for p in ports)
        env = {"SEEKER_TOKEN": token}
        if tls:
            env.update(
                SEEKER_TLS_CERT=str(tls.cert),
                SEEKER_TLS_KEY=str(tls.key),
                SEEKER_CA_CERT=self.verify,
            )
        self.env = env
        common = ["--log-level", "debug"]
        self.channel = Service(
            "channel",
            [
                "channel",
                "start",
                "--port",
                str(ports[0]),
                "--data-dir",
                str(base / "channel"),
                "--mongo-url",
                db_url(mongo_url, db_prefix + "_channel"),
                *common,
            ],
            base,
            env,
        )
        self.seeker = Service(
            "seeker",
            [
                "seeker",
                "start",
                "--port",
                str(ports[1]),
                "--data-dir",
                str(base / "seeker"),
                "--mongo-url",
                self.seeker_db_url,
                "--channel-url",
                self.channel_url,
                *seeker_args,
                *common,
            ],
            base,
            env,
        )
        self.helpers: dict[str, Service] = {}
        self.helper_urls: dict[str, str] = {}
        self.with_helper = with_helper

    @property
    def helper_url(self) -> str:
        return self.helper_urls["helper-1"]

    @property
    def helper(self) -> Service:
        return self.helpers["helper-1"]

    def add_helper(self, name: str, *extra: str, wait: bool = True) -> Service:
        port = free_port()
        svc = Service(
            name,
            [
                "helper",
                "start",
                "--port",
                str(port),
                "--name",
                name,
                "--data-dir",
                str(self.base / name),
                "--seeker-url",
                self.seeker_url,
                "--channel-url",
                self.channel_url,
                "--log-level",
                "debug",
                *extra,
            ],
            self.base,
            self.env,
        )
        self.helpers[name] = svc
        self.helper_urls[name] = f"{self.scheme}://127.0.0.1:{port}"
        if wait:
            svc.start().wait_healthy(self.helper_urls[name], verify=self.verify)
        return svc

    def start(self) -> Stack:
        try:
            self.channel.start()
            self.seeker.start()
            self.channel.wait_healthy(self.channel_url, verify=self.verify)
            self.seeker.wait_healthy(self.seeker_url, verify=self.verify)
            if self.with_helper:
                self.add_helper("helper-1", "--slots", "2")
        except BaseException:
            self.stop()  # leave no process behind
            raise
        return self

    def stop(self) -> None:
        stop_all([*self.helpers.values(), self.seeker, self.channel])

    def seeker_credential(self, helper_id: str) -> str:
        """What the seeker presents to a helper with every push: the
        credential it issued to the helper, made as the seeker makes it, from
        its key (in its data directory) and the helper's nonce (in its
        database): the seeker's side, whatever the helper kept. For a test
        that pushes to a helper directly, as its seeker would."""
        key = (self.base / "seeker" / "credential-key").read_text().strip().encode()
        client = pymongo.MongoClient(self.seeker_db_url, serverSelectionTimeoutMS=5000)
        try:
            helpers = HelperStore(client.get_default_database())
            credentials = HelperCredentials(key, helpers, lambda: datetime.now(timezone.utc))
            credential = credentials.for_helper(helper_id)
        finally:
            client.close()
        assert credential, f"the seeker issued no credential to helper {helper_id}"
        return credential

    def logs(self) -> str:
        services = [self.channel, self.seeker, *self.helpers.values()]
        return "\n".join(f"===== {s.name}\n{s.log()}" for s in services)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, mongo_url, workload_image):
    s = Stack(
        tmp_path_factory.mktemp("stack"), mongo_url, secrets.token_urlsafe(16), secrets.token_hex(4)
    )
    s.start()
    yield s
    s.stop()


def make_cluster(tmp_path_factory, mongo_url, name: str, *seeker_args: str) -> Stack:
    """channel and seeker only; tests add the helpers they need (`fleet`)."""
    s = Stack(
        tmp_path_factory.mktemp(name),
        mongo_url,
        secrets.token_urlsafe(16),
        secrets.token_hex(4),
        seeker_args=seeker_args,
        with_helper=False,
    )
    return s.start()


@pytest.fixture
def fleet(cluster, docker_engine):
    """`add(name, resources, *options)` starts a helper declaring test
    resources; every helper a test added is gone after it, with the
    containers it left. Needs a `cluster` fixture: a module's own (most are
    module-scoped), or the one below, on a database of its own."""
    client = SeekerClient(cluster.seeker_url, cluster.token)
    started: list[str] = []
    ids: set[str] = set()  # of every helper added: one killed may be purged before the end

    def add(name: str, resources: str = "cpus=4,memory=4g", *extra: str):
        cluster.add_helper(name, "--test-resources", resources, "--heartbeat", "5", *extra)
        started.append(name)
        wait_until(
            lambda: any(h["name"] == name for h in client.helpers()), 30, f"{name} to register"
        )
        ids.update(h["helper_id"] for h in client.helpers() if h["name"] == name)
        return cluster.helpers[name]

    yield add, client
    ids.update(h["helper_id"] for h in client.helpers())
    for name in started:
        cluster.helpers.pop(name).stop(signal.SIGKILL)
    for helper_id in ids:
        with contextlib.suppress(ApiError):  # already purged after a kill: 404
            client.remove_helper(helper_id)
    remove_containers(docker_engine, ids)


@pytest.fixture
def database(tmp_path):
    """SecantusDB in a process of its own, which a test may stop and start
    again (tests/integration/harness.py `Database`)."""
    db = Database(tmp_path).start()
    yield db
    db.stop()


@pytest.fixture
def cluster(tmp_path_factory, database, workload_image):
    """A channel and a seeker on `database`, for a module that has no
    cluster of its own (a test may stop the database, or kill the seeker)."""
    s = make_cluster(
        tmp_path_factory, database.url, "faults", "--probe-interval", "1", "--liveness", "30"
    )
    yield s
    s.stop()
