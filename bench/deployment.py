"""The deployments the benchmarks run against, each service a process of
its own: `Deployment` is a database, `channel start`, `seeker start` and the
simulated fleet (bench/fleet.py); `Cluster` the same with real helpers
(`helper start`, real Docker) instead of the fleet."""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import threading
import time
from pathlib import Path

from bench.common import IMAGE, MongoServer, Service, free_ports, wait_until
from bench.heartbeats import read_counters
from helper.runs import HELPER_LABEL
from seeker.client import SeekerClient
from seeker.models import TaskState
from serving.http import ApiError

HELPERS = 200
SLOTS = 4
CLIENTS = 8


class Deployment:
    """Database, channel, seeker and the fleet, each its own process. The
    fleet joins on entering, or with `join()` when `join_now` is False;
    `pull`: pulling helpers; `channel`: False for none (results then go
    nowhere: for a fleet that runs nothing)."""

    def __init__(
        self,
        tmp: Path,
        db: MongoServer,
        helpers: int = HELPERS,
        pull: bool = False,
        join_now: bool = True,
        channel: bool = True,
        seeker_args: tuple[str, ...] = (),
    ):
        self.token = secrets.token_urlsafe(16)
        self.db = db
        self.helpers = helpers
        self.join_now = join_now
        ports = free_ports(3)
        self.channel_url, self.seeker_url = (f"http://127.0.0.1:{p}" for p in ports[:2])
        common = [f"--token={self.token}", "--log-level", "warning"]
        self.channel = None
        if channel:
            self.channel = Service(
                "channel",
                [
                    "channel",
                    "start",
                    "--port",
                    str(ports[0]),
                    "--data-dir",
                    str(tmp / "channel"),
                    "--mongo-url",
                    db.db_url("channel"),
                    *common,
                ],
                tmp,
            )
        else:
            self.channel_url = "http://127.0.0.1:9"  # discard: nothing is sent there
        self.seeker = Service(
            "seeker",
            [
                "seeker",
                "start",
                "--port",
                str(ports[1]),
                "--data-dir",
                str(tmp / "seeker"),
                "--mongo-url",
                db.db_url("seeker"),
                "--channel-url",
                self.channel_url,
                *seeker_args,
                *common,
            ],
            tmp,
        )
        self.stats = tmp / "fleet" / "stats.json"
        self.fleet = Service(
            "fleet",
            [
                "bench.fleet",
                "--seeker-url",
                self.seeker_url,
                "--channel-url",
                self.channel_url,
                f"--token={self.token}",
                "--data-dir",
                str(tmp / "fleet"),
                "--port",
                str(ports[2]),
                "--helpers",
                str(helpers),
                "--slots",
                str(SLOTS),
                *(["--pull"] if pull else []),
            ],
            tmp,
        )
        self.client = db.client()
        # the database requests wait_until_succeeded made: the benchmark's
        # own, for a figure of the services' operations to leave out
        self.reads = 0
        self.seeker_db = self.client[db.db_name("seeker")]
        self.channel_db = self.client[db.db_name("channel")]

    def services(self) -> list[Service]:
        return [s for s in (self.channel, self.seeker, self.fleet) if s is not None]

    def __enter__(self) -> Deployment:
        try:
            if self.channel is not None:
                self.channel.start()
            self.seeker.start()
            if self.channel is not None:
                self.channel.wait_healthy(self.channel_url)
            self.seeker.wait_healthy(self.seeker_url)
            if self.join_now:
                self.join()
        except BaseException:
            self.__exit__()
            raise
        return self

    def join(self) -> float:
        """Start the fleet; returns the seconds until every helper had
        registered (and, pulling, sent its first poll)."""
        t0 = time.perf_counter()
        self.fleet.start()
        limit = max(120, self.helpers / 10)  # at least 10 registrations a second
        try:
            wait_until(
                lambda: self.stats.exists() or self.fleet.proc.poll() is not None,
                limit,
                f"{self.helpers} helpers registered",
                interval=0.2,
            )
        except AssertionError:
            joined = self.seeker_db["helpers"].estimated_document_count()
            raise TimeoutError(
                f"{joined:,} of {self.helpers:,} helpers registered in {limit:.0f} s"
            ) from None
        if self.fleet.proc.poll() is not None:
            raise RuntimeError(f"the fleet exited:\n{self.fleet.log()}")
        return time.perf_counter() - t0

    def counters(self) -> dict[str, float]:
        """The fleet's counters (bench/heartbeats.py), as last written."""
        return read_counters(self.stats)

    def processes(self) -> dict:
        procs = {s.name: s.process() for s in self.services()}
        if self.db.process():
            procs["database"] = self.db.process()
        return procs

    def push_tasks(self, n: int, already: int = 0) -> float:
        """Submit `n` tasks from CLIENTS threads and wait until all succeeded
        (on top of `already` earlier ones); returns the wall time."""
        t0 = time.perf_counter()
        self.submit(n)
        self.wait_until_succeeded(already + n, timeout=max(300, n / 10))
        return time.perf_counter() - t0

    def submit(self, n: int) -> list[str]:
        """Submit `n` trivial tasks from CLIENTS threads; their ids."""
        clients = [SeekerClient(self.seeker_url, self.token, timeout=60) for _ in range(CLIENTS)]
        failures: list[str] = []
        ids: list[str] = []

        def submit(k: int) -> None:
            for _ in range(k, n, CLIENTS):
                try:
                    ids.append(clients[k].submit(IMAGE, ["true"])["task_id"])
                except Exception as exc:  # counted, and the run fails below
                    failures.append(repr(exc))

        threads = [threading.Thread(target=submit, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for c in clients:
            c.close()
        if failures:
            raise RuntimeError(f"{len(failures)} submits failed, e.g. {failures[0]}")
        return ids

    def wait_until_succeeded(self, total: int, timeout: float) -> None:
        """Until `total` tasks have succeeded; fails when a service exits."""
        tasks = self.seeker_db["tasks"]
        deadline = time.monotonic() + timeout
        while self._succeeded(tasks) < total:
            if time.monotonic() > deadline:
                states = list(tasks.aggregate([{"$group": {"_id": "$state", "n": {"$sum": 1}}}]))
                raise TimeoutError(f"tasks not all succeeded: {states}")
            for svc in self.services():
                if svc.proc is not None and svc.proc.poll() is not None:
                    raise RuntimeError(f"{svc.name} exited:\n{svc.log()}")
            time.sleep(0.2)

    def _succeeded(self, tasks) -> int:
        self.reads += 1  # one count: an aggregate, a "command" in the opcounters
        return tasks.count_documents({"state": TaskState.SUCCEEDED})

    def __exit__(self, *exc) -> None:
        for svc in reversed(self.services()):
            with contextlib.suppress(Exception):
                svc.stop()
        self.client.close()


class Cluster:
    """A database (given), `channel start`, `seeker start`, and real
    `helper start` processes (real Docker) that the benchmark adds, kills
    and removes; on exit every service stops, and the containers its
    helpers left (a SIGKILLed helper's keep running) are removed."""

    def __init__(self, tmp: Path, db: MongoServer, seeker_args: tuple[str, ...] = ()):
        self.tmp = tmp
        self.token = secrets.token_urlsafe(16)
        self.db = db
        ports = free_ports(2)
        self.channel_url, self.seeker_url = (f"http://127.0.0.1:{p}" for p in ports)
        common = [f"--token={self.token}", "--log-level", "info"]
        self.channel = Service(
            "channel",
            ["channel", "start", "--port", str(ports[0]), "--data-dir", str(tmp / "channel")]
            + ["--mongo-url", db.db_url("channel"), *common],
            tmp,
        )
        self.seeker = Service(
            "seeker",
            ["seeker", "start", "--port", str(ports[1]), "--data-dir", str(tmp / "seeker")]
            + ["--mongo-url", db.db_url("seeker"), "--channel-url", self.channel_url]
            + [*seeker_args, *common],
            tmp,
        )
        self.helpers: dict[str, Service] = {}
        self.helper_ids: dict[str, str] = {}
        self.client = SeekerClient(self.seeker_url, self.token, timeout=30)
        self.mongo = db.client()
        self.seeker_db = self.mongo[db.db_name("seeker")]

    def __enter__(self) -> Cluster:
        try:
            self.channel.start()
            self.seeker.start()
            self.channel.wait_healthy(self.channel_url)
            self.seeker.wait_healthy(self.seeker_url)
        except BaseException:
            self.__exit__()
            raise
        return self

    def add_helper(self, name: str, *options: str) -> Service:
        """`helper start --name NAME OPTIONS...`, once the seeker lists it."""
        (port,) = free_ports(1)
        data = self.tmp / name
        svc = Service(
            name,
            ["helper", "start", "--port", str(port), "--name", name, "--data-dir", str(data)]
            + ["--seeker-url", self.seeker_url, "--channel-url", self.channel_url]
            + [f"--token={self.token}", "--log-level", "info", *options],
            self.tmp,
        )
        self.helpers[name] = svc.start()
        svc.wait_healthy(f"http://127.0.0.1:{port}")
        self.helper_ids[name] = json.loads((data / "helper.json").read_text())["helper_id"]
        wait_until(
            lambda: any(h["name"] == name and h["online"] for h in self.client.helpers()),
            60,
            f"{name} registered",
        )
        return svc

    def remove_helper(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop the helper's process (with `sig`), then take it off the seeker."""
        with contextlib.suppress(Exception):
            self.helpers[name].stop(sig)
        with contextlib.suppress(ApiError):  # purged already
            self.client.remove_helper(self.helper_ids[name])
        remove_containers(self.helper_ids[name])

    def __exit__(self, *exc) -> None:
        for name, svc in self.helpers.items():
            with contextlib.suppress(Exception):
                svc.stop(signal.SIGKILL)
            remove_containers(self.helper_ids.get(name))
        for svc in (self.seeker, self.channel):
            with contextlib.suppress(Exception):
                svc.stop()
        self.client.close()
        self.mongo.close()


def remove_containers(helper_id: str | None) -> int:
    """Remove the containers a helper started (running or not)."""
    if not helper_id:
        return 0
    import docker

    client = docker.from_env()
    try:
        found = client.containers.list(all=True, filters={"label": f"{HELPER_LABEL}={helper_id}"})
        for c in found:
            with contextlib.suppress(docker.errors.APIError):
                c.remove(force=True)
        return len(found)
    finally:
        client.close()
