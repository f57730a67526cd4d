"""History: what a seeker's periodic jobs cost beside the tasks it ran before.

A seeker keeps every task it ran. Its periodic jobs (the sweep, the probe of
silent helpers, the reconcilers, the checks of stale pushes and
unacknowledged offers) run every few seconds whether or not work arrives; a
query among them that walks every task ever run costs more each day the
seeker lives. Seeker: a stack as `seeker up` starts it (seeker, channel and
one helper, in this process), idle, on a database server in a process of its
own (SecantusDB, or TEST_MONGO_URL), whose seeker database already holds N
finished tasks (10,000; 1,000 quick), each with its finished assignment,
written as the store writes them. Baseline: the same stack on an empty
database. Each arm on a fresh server; rounds alternate (round 2 runs them in
the reverse order). After 5 s to settle, over the window (40 s; 10 s quick):
the database's CPU as a share of one core (with TEST_MONGO_URL not
measured), this process's (the services'), and the database's operations per
second (its opcounters, commands left out). Target: the database's CPU
beside the history at most 1.5x its CPU without it (the jobs cost no more
each day; the figures are small and noisy, so read them beside the
baseline's spread)."""

from __future__ import annotations

import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from bench.common import MongoServer, cpu_seconds, fmt_ratio, main, ratio, report
from seeker.process.up import Stack
from seeker.store.workflows import WorkflowStore

NAME = "history"
COUNTED = ("insert", "query", "update", "delete", "getmore")
SPEC = {"image": "seeker-demo:latest", "command": ["true"]}


def finished(db, n: int) -> None:
    """`n` tasks that ran two hours ago, each with its finished assignment."""
    then = datetime.now(UTC) - timedelta(hours=2)
    for start in range(0, n, 1000):
        tasks, assignments = [], []
        for i in range(start, min(n, start + 1000)):
            task = WorkflowStore.document(f"old{i}", SPEC, then)
            task.update(state="succeeded", attempts=1, open=0, updated_at=then, finished_at=then)
            tasks.append(task)
            assignments.append(
                {
                    "_id": f"old{i}.1",
                    "task_id": f"old{i}",
                    "attempt": 1,
                    "helper_id": "gone",
                    "helper_name": "gone",
                    "state": "finished",
                    "assigned_at": then,
                    "finished_at": then,
                    "reservation": {},
                }
            )
        db["tasks"].insert_many(tasks)
        db["assignments"].insert_many(assignments)


def measure(history: int, window: float) -> dict:
    """One arm: a fresh server, `history` finished tasks, a stack idle."""
    with (
        tempfile.TemporaryDirectory(prefix="seeker-bench-history-") as tmp,
        MongoServer(NAME) as db,
    ):
        names = (db.db_name("seeker"), db.db_name("channel"))
        with db.client(**db.write_options()) as client:
            finished(client[names[0]], history)
        stack = Stack(
            Path(tmp),
            secrets.token_urlsafe(16),
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
            time.sleep(5)
            me, db_proc = psutil.Process(), db.process()
            o0, c0 = db.opcounters(), cpu_seconds(me)
            d0 = cpu_seconds(db_proc) if db_proc else 0.0
            time.sleep(window)
            o1, c1 = db.opcounters(), cpu_seconds(me)
            d1 = cpu_seconds(db_proc) if db_proc else 0.0
        finally:
            stack.stop()
    ops = sum(o1.get(k, 0) - o0.get(k, 0) for k in COUNTED)
    return {
        "database_cores": (d1 - d0) / window if db_proc else None,
        "services_cores": (c1 - c0) / window,
        "ops_per_s": ops / window,
        "database": db.kind,
    }


def run(quick: bool = False) -> dict:
    history, window, rounds = (1000, 10.0, 1) if quick else (10_000, 40.0, 2)
    arms = {"history": history, "empty": 0}
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    for r in range(rounds):
        for arm in arms if r % 2 == 0 else reversed(list(arms)):
            runs[arm].append(measure(arms[arm], window))

    def spread(arm: str, key: str, fmt: str) -> str:
        values = [m[key] for m in runs[arm] if m[key] is not None]
        if not values:
            return "not measured"
        low, high = min(values), max(values)
        return fmt.format(low) if low == high else f"{fmt.format(low)}-{fmt.format(high)}"

    def mean(arm: str, key: str) -> float | None:
        values = [m[key] for m in runs[arm] if m[key] is not None]
        return sum(values) / len(values) if values else None

    rows = []
    for key, what, fmt in (
        ("database_cores", "the database's CPU, share of one core", "{:.2%}"),
        ("services_cores", "the services' CPU, share of one core", "{:.2%}"),
        ("ops_per_s", "database operations per second", "{:.1f}"),
    ):
        r = ratio(mean("history", key) or 0.0, mean("empty", key) or 0.0)
        rows.append([what, spread("history", key, fmt), spread("empty", key, fmt), fmt_ratio(r)])
    db_ratio = ratio(*(mean(arm, "database_cores") or 0.0 for arm in ("history", "empty")))
    notes = [
        f"{rounds} round(s) each way, alternating; each arm on a fresh database server "
        f"({runs['empty'][0]['database']}), a stack as `seeker up` starts it, idle; "
        f"{window:.0f} s measured after 5 s to settle.",
        f"Seeker: its database holds {history:,} tasks that finished two hours before, each "
        "with its finished assignment. Baseline: an empty database.",
    ]
    return report(
        NAME,
        f"History: an idle seeker beside {history:,} finished tasks",
        rows,
        target="the database's CPU beside the history at most 1.5x its CPU without it",
        met=None if db_ratio is None else db_ratio < 1.5,
        notes=notes,
        data={"history": history, "window_s": window, "runs": runs},
        quick=quick,
    )


if __name__ == "__main__":
    main(run, NAME)
