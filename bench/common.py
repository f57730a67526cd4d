"""What the benchmarks share: a database to run against, service processes,
timing statistics, the machine's description, and each module's command line."""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pymongo

from serving.database import is_secantus, names_retry_writes
from tests.integration.harness import Service, free_ports, wait_until  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "seeker-demo:latest"


# --- statistics ----------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ratio(value: float, baseline: float) -> float | None:
    return value / baseline if baseline else None


def cpu_seconds(proc: psutil.Process) -> float:
    """User plus system CPU time of a process and its (still living) children."""
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def thread_wakes(proc: psutil.Process) -> int | None:
    """Times the process's living threads blocked (on a lock, a socket, a
    sleep) and were woken again: each thread's voluntary context switches,
    from /proc. Threads that have ended are not counted. None where /proc
    does not tell (not Linux)."""
    total, seen = 0, False
    for status in Path(f"/proc/{proc.pid}/task").glob("*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:  # the thread ended meanwhile
            continue
        for line in lines:
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
                seen = True
    return total if seen else None


def woken(before: int | None, after: int | None) -> int | None:
    """The wakes between two counts of `thread_wakes`, if both were read."""
    return None if before is None or after is None else after - before


# --- a database --------------------------------------------------------------


def with_db(url: str, name: str) -> str:
    """The server's URL with `name` as the database in its path."""
    base, _, query = url.partition("?")
    base = base.split("://", 1)
    host = base[1].split("/", 1)[0]
    return f"{base[0]}://{host}/{name}" + (f"?{query}" if query else "")


class MongoServer:
    """The database one benchmark runs against: TEST_MONGO_URL when set
    (databases named after this run, dropped at the end), else SecantusDB
    in a process of its own (so that its CPU is not counted as the
    benchmarked process's), with its data in a temporary directory that is
    removed at the end."""

    def __init__(self, name: str):
        self.prefix = f"bench_{name}_{secrets.token_hex(3)}"
        self.external = os.environ.get("TEST_MONGO_URL")
        self.proc: subprocess.Popen | None = None
        self.tmp: str | None = None
        self.url = ""
        self._dbs: set[str] = set()

    @property
    def kind(self) -> str:
        return "MongoDB (TEST_MONGO_URL)" if self.external else "SecantusDB, own process"

    def __enter__(self) -> MongoServer:
        if self.external:
            self.url = self.external
            return self
        self.tmp = tempfile.mkdtemp(prefix="seeker-bench-db-")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.dbserver", self.tmp],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("mongodb://"):
            self.__exit__(None, None, None)
            raise RuntimeError(f"SecantusDB did not start (said {line!r})")
        self.url = line
        return self

    def db_url(self, name: str) -> str:
        """A database of this run's own on the server."""
        full = f"{self.prefix}_{name}"
        self._dbs.add(full)
        return with_db(self.url, full)

    def db_name(self, name: str) -> str:
        full = f"{self.prefix}_{name}"
        self._dbs.add(full)
        return full

    def client(self, **kwargs) -> pymongo.MongoClient:
        return pymongo.MongoClient(self.url, tz_aware=True, **kwargs)

    def write_options(self) -> dict:
        """The client options the services' writes go with on this server,
        decided as serving/database.py decides them: not retryable on
        SecantusDB, pymongo's on a MongoDB or where the URL says."""
        if names_retry_writes(self.url):
            return {}
        with self.client() as client:
            return {"retryWrites": False} if is_secantus(client) else {}

    def process(self) -> psutil.Process | None:
        return psutil.Process(self.proc.pid) if self.proc else None

    def opcounters(self) -> dict[str, int]:
        with self.client() as c:
            return dict(c.admin.command("serverStatus").get("opcounters", {}))

    def __exit__(self, *exc) -> None:
        if self.external and self._dbs:
            with self.client() as c:
                for name in self._dbs:
                    c.drop_database(name)
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


# --- service processes: the integration tests' harness -------------------------

# --- the machine -------------------------------------------------------------


def cpu_model() -> str:
    """The processor's name, as /proc/cpuinfo gives it where it can."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return model


def machine() -> dict:
    model = cpu_model()
    try:
        import docker

        client = docker.from_env()
        engine = client.version().get("Version", "?")
        client.close()
    except Exception as exc:  # no engine: say so rather than fail
        engine = f"unavailable ({type(exc).__name__})"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "docker_engine": engine,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "database": "MongoDB (TEST_MONGO_URL)"
        if os.environ.get("TEST_MONGO_URL")
        else "SecantusDB (embedded, pure Python)",
    }


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --- a result and a module's command line ----------------------------------------


def report(
    name: str,
    title: str,
    rows: list[list],
    target: str | None = None,
    met: bool | None = None,
    notes: list[str] | None = None,
    data: dict | None = None,
    quick: bool = False,
) -> dict:
    """What `run()` returns. `rows`: [what, Seeker, baseline, ratio] with
    the values already formatted."""
    return {
        "name": name,
        "title": title,
        "date": now_iso(),
        "quick": quick,
        "rows": rows,
        "target": target,
        "met": met,
        "notes": notes or [],
        "data": data or {},
    }


def main(run, name: str) -> None:
    """`python -m bench.NAME [--quick]`: run one benchmark, print its result."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}")
    parser.add_argument("--quick", action="store_true", help="a smoke test under a minute")
    args = parser.parse_args()
    result = run(args.quick)
    from bench.render import section

    print(section(result))
    print(json.dumps(result["data"], indent=2, default=str))


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def fmt_ratio(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}x"
