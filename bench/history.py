"""History: what a seeker and a channel cost beside the work they did before.

A seeker keeps every task it ran, and a channel every result and artifact.
Their periodic jobs (the sweep, the probe of silent helpers, the
reconcilers, the checks of stale pushes and unacknowledged offers) run
every few seconds whether or not work arrives, Prometheus scrapes both, a
dashboard lists the newest tasks every 2 s, and each new task stores a
result and an artifact beside the old ones: a query among these that reads
every task, result or artifact ever stored costs more each day the
services live (bench/findings.md 47-51).

Seeker: a stack as `seeker up` starts it (seeker, channel and one helper of
4 slots, in this process), on a database server in a process of its own
(SecantusDB, or TEST_MONGO_URL), whose databases already hold N finished
tasks (10,000; 1,000 quick) run over a day that ended two hours before,
each with its finished assignment, its result and a 1 KB artifact,
inserted in the shapes the stores write. Baseline: the same stack beside
200 such tasks (two of the dashboard's pages: empty databases would answer
its list with nothing, which costs nothing, and show the page's own cost
as the history's). Each arm on a fresh server; rounds alternate (round 2
runs them in the reverse order).

After 5 s to settle, the idle window (40 s; 10 s quick). From the start of
the settling time both services' `/metrics` are read every 15 s (5 s
quick), as Prometheus would (the first scrape has the channel count what
it stores, which it does every 5 minutes at most: a 40 s window in steady
state holds such a count once in 7.5; the slowest scrape shown is that
one), and the seeker's 100 newest tasks are listed every 2 s, as an open
dashboard lists them. Then a batch of tasks (20; 8 quick) that each write a
file under /output (a result and an artifact each), submitted at once.

Measured: the database's CPU (with TEST_MONGO_URL not measured), this
process's (the services', the scrapes' and the lists'), the database's
operations (its opcounters, commands left out), the slowest scrape and
task list, and the batch's wall time. Target: the database's CPU at most
1.5x the baseline's, idle and per task (the figures are small and
noisy: read them beside the baseline's spread)."""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import requests
from bson import Binary, ObjectId

from bench.common import IMAGE, MongoServer, cpu_seconds, fmt_ratio, main, ratio, report
from bench.containers import last_event, wait_ended
from seeker.client import SeekerClient
from seeker.process.up import Stack
from seeker.store.events import TASK_SUCCEEDED
from seeker.store.workflows import WorkflowStore

NAME = "history"
COUNTED = ("insert", "query", "update", "delete", "getmore")
SPEC = {"image": IMAGE, "command": ["true"]}
# each task of the batch leaves a result and an artifact (output.tar)
WRITES_OUTPUT = ["sh", "-c", "mkdir -p /output && echo out > /output/out.txt"]
TARGET = 1.5  # the database's CPU beside the history, to the baseline's
BASELINE = 200  # finished tasks beside the baseline's stack: two pages of the dashboard
DASHBOARD = 2.0  # seconds between an open dashboard's reads of the task list
DAY = timedelta(days=1)


def finished(seeker_db, channel_db, n: int) -> None:
    """`n` tasks run over a day that ended two hours ago, each with its
    finished assignment, its result and a 1 KB artifact (a GridFS file of
    one chunk)."""
    end = datetime.now(UTC) - timedelta(hours=2)
    for start in range(0, n, 1000):
        ids = [f"old{i}" for i in range(start, min(n, start + 1000))]
        tasks, assignments, results, files, chunks = [], [], [], [], []
        for i, task_id in zip(range(start, start + len(ids)), ids, strict=True):
            then = end - (n - i) * DAY / n  # one day's tasks, the last two hours ago
            task = WorkflowStore.document(task_id, SPEC, then)
            task.update(state="succeeded", attempts=1, open=0, updated_at=then, finished_at=then)
            tasks.append(task)
            where = {"task_id": task_id, "helper_id": "gone", "attempt": 1}
            assignments.append(
                {
                    "_id": f"{task_id}.1",
                    **where,
                    "helper_name": "gone",
                    "state": "finished",
                    "assigned_at": then,
                    "finished_at": then,
                    "reservation": {},
                }
            )
            results.append(
                {
                    **where,
                    "result_id": f"{task_id}.1",
                    "image": IMAGE,
                    "status": "succeeded",
                    "exit_code": 0,
                    "stdout": "",
                    "received_at": then,
                }
            )
            file_id = ObjectId()
            files.append(
                {
                    "_id": file_id,
                    "filename": "output.tar",
                    "length": 1024,
                    "chunkSize": 255 * 1024,
                    "uploadDate": then,
                    "metadata": {**where, "uploaded_at": then, "sha256": "0" * 64},
                }
            )
            chunks.append({"files_id": file_id, "n": 0, "data": Binary(b"x" * 1024)})
        seeker_db["tasks"].insert_many(tasks)
        seeker_db["assignments"].insert_many(assignments)
        channel_db["results"].insert_many(results)
        channel_db["artifacts.files"].insert_many(files)
        channel_db["artifacts.chunks"].insert_many(chunks)


class Poller:
    """GETs `urls` every `every` seconds, as Prometheus reads /metrics and
    an open dashboard its task list, and keeps the slowest answer's time."""

    def __init__(self, urls: list[str], token: str, every: float):
        self.urls, self.every = urls, every
        self.headers = {"Authorization": f"Bearer {token}"}
        self.slowest = 0.0
        self.scrapes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                for url in self.urls:
                    t0 = time.perf_counter()
                    session.get(url, headers=self.headers, timeout=60).raise_for_status()
                    self.slowest = max(self.slowest, time.perf_counter() - t0)
                    self.scrapes += 1
                self._stop.wait(self.every)


def batch(stack: Stack, client: SeekerClient, n: int) -> float:
    """`n` tasks that each write to /output, submitted at once; returns the
    time until every one has ended, its result and its artifact stored
    (looked up by the tasks' ids: a count of everything stored would be the
    very cost this measures)."""
    seq = last_event(client)
    t0 = time.perf_counter()
    ids = [client.submit(IMAGE, WRITES_OUTPUT)["task_id"] for _ in range(n)]
    deadline = time.monotonic() + 300
    ended = wait_ended(client, set(ids), seq, deadline=deadline)
    results, files = stack.channel_db["results"], stack.channel_db["artifacts.files"]
    while (
        results.count_documents({"task_id": {"$in": ids}}) < n
        or files.count_documents({"metadata.task_id": {"$in": ids}}) < n
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("results or artifacts missing from the channel after 300 s")
        time.sleep(0.05)
    if set(ended.values()) != {TASK_SUCCEEDED}:
        raise RuntimeError(f"task ends {sorted(set(ended.values()))}")
    return time.perf_counter() - t0


def measure(history: int, window: float, scrape_every: float, tasks: int) -> dict:
    """One arm: a fresh server, `history` finished tasks, a stack idle and
    scraped, then a batch."""
    with (
        tempfile.TemporaryDirectory(prefix="seeker-bench-history-") as tmp,
        MongoServer(NAME) as db,
    ):
        names = (db.db_name("seeker"), db.db_name("channel"))
        with db.client(**db.write_options()) as client:
            finished(client[names[0]], client[names[1]], history)
        token = secrets.token_urlsafe(16)
        stack = Stack(
            Path(tmp),
            token,
            mongo_url=db.url,
            seeker_port=0,
            channel_port=0,
            helper_port=0,
            slots=4,
            helper_name=f"bench-history-{secrets.token_hex(3)}",
            databases=names,
        )
        stack.start()
        try:
            if not stack.helper.wait_registered(60):
                raise RuntimeError("the helper did not register")
            seeker = SeekerClient(stack.seeker.url, token)
            me, db_proc = psutil.Process(), db.process()

            def now() -> tuple[dict, float, float]:
                return db.opcounters(), cpu_seconds(me), cpu_seconds(db_proc) if db_proc else 0.0

            # the first scrape, in the settling time, has the channel count
            # what it stores, as it does every 5 minutes (STORED_EVERY)
            urls = [f"{stack.seeker.url}/metrics", f"{stack.channel.url}/metrics"]
            scraper = Poller(urls, token, scrape_every)
            dashboard = Poller([f"{stack.seeker.url}/api/v1/tasks?limit=100"], token, DASHBOARD)
            with scraper, dashboard:
                time.sleep(5)
                o0, c0, d0 = now()
                time.sleep(window)
                o1, c1, d1 = now()
            wall = batch(stack, seeker, tasks)
            o2, c2, d2 = now()
        finally:
            stack.stop()

    def ops(a: dict, b: dict) -> int:
        return sum(b.get(k, 0) - a.get(k, 0) for k in COUNTED)

    return {
        "idle": {
            "database_cores": (d1 - d0) / window if db_proc else None,
            "services_cores": (c1 - c0) / window,
            "ops_per_s": ops(o0, o1) / window,
            "slowest_scrape_s": scraper.slowest,
            "scrapes": scraper.scrapes,
            "slowest_task_list_s": dashboard.slowest,
            "task_lists": dashboard.scrapes,
        },
        "batch": {
            "database_ms": (d2 - d1) / tasks * 1e3 if db_proc else None,
            "services_ms": (c2 - c1) / tasks * 1e3,
            "ops": ops(o1, o2) / tasks,
            "wall_s": wall,
        },
        "database": db.kind,
    }


def run(quick: bool = False) -> dict:
    history, window, every, tasks, rounds = (
        (1000, 10.0, 5.0, 8, 1) if quick else (10_000, 40.0, 15.0, 20, 2)
    )
    arms = {"history": history, "baseline": BASELINE}
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    for r in range(rounds):
        for arm in arms if r % 2 == 0 else reversed(list(arms)):
            runs[arm].append(measure(arms[arm], window, every, tasks))

    def values(arm: str, part: str, key: str) -> list[float]:
        return [m[part][key] for m in runs[arm] if m[part][key] is not None]

    def spread(arm: str, part: str, key: str, fmt: str) -> str:
        got = values(arm, part, key)
        if not got:
            return "not measured"
        low, high = fmt.format(min(got)), fmt.format(max(got))
        return low if low == high else f"{low}-{high}"

    def mean_ratio(part: str, key: str) -> float | None:
        seeker, base = values("history", part, key), values("baseline", part, key)
        if not seeker or not base:
            return None
        return ratio(sum(seeker) / len(seeker), sum(base) / len(base))

    rows = []
    for part, key, what, fmt in (
        ("idle", "database_cores", "idle: the database's CPU, share of one core", "{:.2%}"),
        ("idle", "services_cores", "idle: the services' CPU, share of one core", "{:.2%}"),
        ("idle", "ops_per_s", "idle: database operations per second", "{:.1f}"),
        ("idle", "slowest_scrape_s", "idle: the slowest scrape of /metrics", "{:.3f} s"),
        ("idle", "slowest_task_list_s", "idle: the slowest list of the newest tasks", "{:.3f} s"),
        ("batch", "database_ms", "per task: the database's CPU", "{:.1f} ms"),
        ("batch", "services_ms", "per task: the services' CPU", "{:.1f} ms"),
        ("batch", "ops", "per task: database operations", "{:.1f}"),
        ("batch", "wall_s", f"the batch of {tasks}: wall time", "{:.1f} s"),
    ):
        r = mean_ratio(part, key)
        rows.append(
            [
                what,
                spread("history", part, key, fmt),
                spread("baseline", part, key, fmt),
                fmt_ratio(r),
            ]
        )
    judged = [mean_ratio("idle", "database_cores"), mean_ratio("batch", "database_ms")]
    notes = [
        f"{rounds} round(s) each way, alternating; each arm on a fresh database server "
        f"({runs['baseline'][0]['database']}), a stack as `seeker up` starts it (one helper of "
        f"4 slots); {window:.0f} s idle after 5 s to settle, both services' /metrics read "
        f"every {every:.0f} s from the start of the settling time (the first scrape has the "
        "channel count what it stores, as it does every 5 minutes) and the 100 newest tasks "
        f"listed every {DASHBOARD:.0f} s, as an open dashboard lists them; then "
        f"{tasks} tasks at once, each writing a file under /output (a result and an artifact "
        "each).",
        f"Seeker: its databases hold {history:,} tasks run over a day that ended two hours "
        "before, each with its finished assignment, its result and a 1 KB artifact. Baseline: "
        f"{BASELINE} such tasks (two pages of the dashboard's list).",
    ]
    return report(
        NAME,
        f"History: a seeker and a channel beside {history:,} finished tasks",
        rows,
        target=(
            f"the database's CPU beside the history at most {TARGET}x its CPU beside "
            f"{BASELINE} finished tasks, "
            "idle and per task"
        ),
        met=None if None in judged else all(r < TARGET for r in judged),
        notes=notes,
        data={"history": history, "window_s": window, "tasks": tasks, "runs": runs},
        quick=quick,
    )


if __name__ == "__main__":
    main(run, NAME)
