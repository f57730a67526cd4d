"""The deployments the benchmarks run against, each service a process of
its own: `Deployment` is a database, `channel start`, `seeker start` and the
simulated fleet (bench/fleet.py)."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from pathlib import Path

from bench.common import IMAGE, MongoServer, Service, free_ports, wait_until
from seeker.client import SeekerClient
from seeker.models import TaskState

HELPERS = 200
SLOTS = 4
CLIENTS = 8


class Deployment:
    """Database, channel, seeker and the fleet, each its own process."""

    def __init__(self, tmp: Path, db: MongoServer, helpers: int = HELPERS):
        self.token = secrets.token_urlsafe(16)
        self.db = db
        self.helpers = helpers
        ports = free_ports(3)
        self.channel_url, self.seeker_url = (f"http://127.0.0.1:{p}" for p in ports[:2])
        common = ["--token", self.token, "--log-level", "warning"]
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
                *common,
            ],
            tmp,
        )
        self.fleet = Service(
            "fleet",
            [
                "bench.fleet",
                "--seeker-url",
                self.seeker_url,
                "--channel-url",
                self.channel_url,
                "--token",
                self.token,
                "--data-dir",
                str(tmp / "fleet"),
                "--port",
                str(ports[2]),
                "--helpers",
                str(helpers),
                "--slots",
                str(SLOTS),
            ],
            tmp,
        )
        self.client = db.client()
        self.seeker_db = self.client[db.db_name("seeker")]
        self.channel_db = self.client[db.db_name("channel")]

    def __enter__(self) -> Deployment:
        try:
            self.channel.start()
            self.seeker.start()
            self.channel.wait_healthy(self.channel_url)
            self.seeker.wait_healthy(self.seeker_url)
            self.fleet.start()
            wait_until(
                lambda: (
                    self.seeker_db["helpers"].count_documents({}) >= self.helpers
                    or self.fleet.proc.poll() is not None
                ),
                120,
                f"{self.helpers} helpers registered",
                interval=0.5,
            )
            if self.fleet.proc.poll() is not None:
                raise RuntimeError(f"the fleet exited:\n{self.fleet.log()}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def processes(self) -> dict:
        procs = {
            "seeker": self.seeker.process(),
            "channel": self.channel.process(),
            "fleet": self.fleet.process(),
        }
        if self.db.process():
            procs["database"] = self.db.process()
        return procs

    def push_tasks(self, n: int, already: int = 0) -> float:
        """Submit `n` tasks from CLIENTS threads and wait until all succeeded
        (on top of `already` earlier ones); returns the wall time."""
        clients = [SeekerClient(self.seeker_url, self.token, timeout=60) for _ in range(CLIENTS)]
        failures: list[str] = []

        def submit(k: int) -> None:
            for _ in range(k, n, CLIENTS):
                try:
                    clients[k].submit(IMAGE, ["true"])
                except Exception as exc:  # counted, and the run fails below
                    failures.append(repr(exc))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=submit, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise RuntimeError(f"{len(failures)} submits failed, e.g. {failures[0]}")
        self._wait_until_succeeded(already + n, timeout=max(300, n / 10))
        return time.perf_counter() - t0

    def _wait_until_succeeded(self, total: int, timeout: float) -> None:
        """Until `total` tasks have succeeded; fails when a service exits."""
        tasks = self.seeker_db["tasks"]
        deadline = time.monotonic() + timeout
        while tasks.count_documents({"state": TaskState.SUCCEEDED}) < total:
            if time.monotonic() > deadline:
                states = list(tasks.aggregate([{"$group": {"_id": "$state", "n": {"$sum": 1}}}]))
                raise TimeoutError(f"tasks not all succeeded: {states}")
            for svc in (self.seeker, self.channel, self.fleet):
                if svc.proc.poll() is not None:
                    raise RuntimeError(f"{svc.name} exited:\n{svc.log()}")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        for svc in (self.fleet, self.seeker, self.channel):
            with contextlib.suppress(Exception):
                svc.stop()
        self.client.close()
