"""Real service processes on loopback, for the integration tests (and the
benchmarks in bench/)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pymongo
import requests

ROOT = Path(__file__).resolve().parents[2]


def free_ports(n: int) -> list[int]:
    """`n` distinct free ports (all held open until all are chosen)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def stop_all(services) -> None:
    """Stop each service in turn, every one of them even when one does not
    stop in time (it is killed): then raise the first failure, once none
    is left running."""
    failures = []
    for service in services:
        try:
            service.stop()
        except Exception as exc:  # the next ones are stopped all the same
            failures.append(exc)
    if failures:
        raise failures[0]


class Service:
    """One `python -m <package> ...` process with its log in a file; with a
    `prefix` (e.g. `ip netns exec NS`), run under that command."""

    def __init__(
        self,
        name: str,
        args: list[str],
        log_dir: Path,
        env: dict | None = None,
        prefix: tuple[str, ...] = (),
    ):
        self.name = name
        self.args = args
        self.prefix = prefix
        self.log_path = Path(log_dir) / f"{name}.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> Service:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def process(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def wait_healthy(self, url: str, timeout: float = 60, verify: str | bool = True) -> Service:
        """`verify`: the CA file of an https:// `url` (as requests takes it)."""
        wait_until(lambda: self._healthy(url, verify), timeout, f"{self.name} healthy at {url}")
        return self

    def _healthy(self, url: str, verify: str | bool) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(f"{url}/healthz", timeout=1, verify=verify).ok
        except requests.RequestException:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self._log.close()
            return self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._log.close()

    def log(self, tail: int | None = 5000) -> str:
        text = self.log_path.read_text(errors="replace")
        return text[-tail:] if tail else text


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll a condition of another process (there is no clock to inject
    across processes); fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def cli(*args: str, token: str | None, seeker_url: str, timeout: float = 120):
    """Run the `seeker` command as a user would."""
    env = {**os.environ, "SEEKER_URL": seeker_url}
    env.pop("SEEKER_TOKEN", None)
    if token is not None:
        env["SEEKER_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "seeker", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def remove_containers(engine, helper_ids) -> None:
    """Remove every container these helpers started (by their label), left
    behind when a test killed a helper during a run."""
    for helper_id in helper_ids:
        label = f"io.seeker.helper={helper_id}"
        for c in engine.containers.list(all=True, filters={"label": label}):
            c.remove(force=True)


class Database:
    """SecantusDB as a process of its own (`python -m secantus`, what the
    `secantusd-py` script runs) on a fixed port and data directory, so that
    it can be stopped and started again where it was."""

    def __init__(self, base):
        self.port = free_port()
        self.url = f"mongodb://127.0.0.1:{self.port}/"
        config = base / "secantusd.toml"
        config.write_text("")  # no auto-discovered configuration
        self.service = Service(
            "database",
            [
                "secantus",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage-path",
                str(base / "db"),
            ],
            base,
        )

    def start(self) -> Database:
        self.service.start()
        wait_until(self.answers, 30, "the database to answer")
        return self

    def answers(self) -> bool:
        if self.service.proc.poll() is not None:
            raise RuntimeError(f"database exited:\n{self.service.log()}")
        client = pymongo.MongoClient(self.url, serverSelectionTimeoutMS=500)
        try:
            return client.admin.command("ping")["ok"] == 1
        except pymongo.errors.PyMongoError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        self.service.stop(signal.SIGTERM)
