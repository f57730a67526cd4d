"""A backlog: thousands of tasks waiting on a fleet with no room, while
nothing else happens. What the seeker and its database spend on it.

Seeker: a database in its own process (SecantusDB, or TEST_MONGO_URL) and
`seeker start`; then either no helper at all, or a simulated fleet
(bench/fleet.py, 20 pushed helpers of 4 slots) whose 80 slots are taken by
tasks that run for an hour. Then N trivial tasks are submitted as arrays of
1,000 and wait. Once every task waiting says why it waits (the passes tell
200 at a time; at most 5 minutes), and a settling time after, the seeker's
and the database's CPU and the database's operations are measured over a
window.

Baseline: the same deployment with no task waiting, in the same run.

Before finding 44 every sweep (each 5 s) read the queue, and SecantusDB
sorts every pending task for that: with 10,000 waiting and no helper the
database spent 30% of a core. Size: 5,000 tasks, 60 s windows (500 and
10 s quick). No target (bench/findings.md 44)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import MongoServer, fmt_ratio, fmt_s, main, ratio, report
from bench.deployment import Deployment
from bench.idle import cpu_of
from seeker.client import SeekerClient
from seeker.models import TaskState
from tests.integration.harness import wait_until

NAME = "backlog"
IMAGE = "seeker-demo:latest"  # never run: the fleet's runtime is simulated
HELPERS, SLOTS = 20, 4  # bench/deployment.py SLOTS
ARRAY = 1_000
TELL_LIMIT = 300.0  # seconds


def idle_with(backlog: int, fleet: bool, settle: float, window: float) -> dict:
    """One deployment: `backlog` tasks waiting, on no helper or on a full
    fleet; the seeker's and the database's figures over `window`."""
    with (
        MongoServer(NAME) as db,
        tempfile.TemporaryDirectory(prefix="seeker-bench-backlog-") as tmp,
        Deployment(Path(tmp), db, HELPERS if fleet else 0, join_now=fleet, channel=False) as dep,
    ):
        client = SeekerClient(dep.seeker_url, dep.token, timeout=120)
        tasks = dep.seeker_db["tasks"]
        if fleet:  # every slot taken for an hour
            for _ in range(HELPERS * SLOTS):
                client.submit(IMAGE, ["sleep", "3600"])
            wait_until(
                lambda: tasks.count_documents({"state": TaskState.RUNNING}) == HELPERS * SLOTS,
                120,
                "every slot taken",
                0.5,
            )
        left = backlog
        t_submit = time.time()
        while left:
            client.submit_array(IMAGE, ["true"], array=min(ARRAY, left))
            left -= min(ARRAY, left)
        pending = {"state": TaskState.PENDING}
        untold = {**pending, "wait_reason": None}
        # the passes tell the waiting why they wait, 200 a pass: until every
        # one is told, or TELL_LIMIT
        told = time.time() + TELL_LIMIT
        while time.time() < told and tasks.count_documents(untold):
            time.sleep(1.0)
        told_s = time.time() - t_submit
        time.sleep(settle)
        procs = {"seeker": dep.seeker.process(), "database": db.process()}
        cpu0, ops0, t0 = {k: cpu_of(p) for k, p in procs.items()}, db.opcounters(), time.time()
        time.sleep(window)
        cpu1, ops1, t1 = {k: cpu_of(p) for k, p in procs.items()}, db.opcounters(), time.time()
        for svc in dep.services():
            if svc.proc is not None and svc.proc.poll() is not None:
                raise RuntimeError(f"{svc.name} exited during the window:\n{svc.log()}")
        got = {f"{k}_cpu_pct": 100 * (cpu1[k] - cpu0[k]) / (t1 - t0) for k in procs}
        got["db_ops_per_s"] = sum(ops1.get(k, 0) - ops0.get(k, 0) for k in ops1) / (t1 - t0)
        got["waiting"] = tasks.count_documents(pending)
        got["waiting_untold"] = tasks.count_documents(untold)
        got["told_s"] = told_s
        client.close()
        return got


def run(quick: bool = False) -> dict:
    backlog, settle, window = (500, 10.0, 10.0) if quick else (5_000, 15.0, 60.0)
    cases = {}
    for fleet in (False, True):
        where = f"a full fleet ({HELPERS} helpers of {SLOTS} slots)" if fleet else "no helper"
        cases[where] = (
            idle_with(backlog, fleet, settle, window),
            idle_with(0, fleet, settle, window),
        )
        print(f"backlog: {where}: {cases[where]}", flush=True)
    rows = []
    for where, (seeker, base) in cases.items():
        for what, key, unit in (
            ("the database's CPU", "database_cpu_pct", "% of a core"),
            ("the seeker's CPU", "seeker_cpu_pct", "% of a core"),
            ("database operations a second", "db_ops_per_s", ""),
        ):
            rows.append(
                [
                    f"{where}: {what}",
                    f"{seeker[key]:.1f}{unit and ' ' + unit}",
                    f"{base[key]:.1f}{unit and ' ' + unit}",
                    fmt_ratio(ratio(seeker[key], base[key])),
                ]
            )
        rows.append(
            [
                f"{where}: tasks waiting, of them not told why",
                f"{seeker['waiting']:,}, {seeker['waiting_untold']:,}",
                f"{base['waiting']:,}",
                "",
            ]
        )
        told = [f"{where}: every task told why it waits, after", fmt_s(seeker["told_s"]), "", ""]
        rows.append(told)
    notes = [
        f"Seeker column: {backlog:,} tasks submitted (arrays of {ARRAY:,}) to a fleet with no "
        f"room; once each says why it waits (at most {TELL_LIMIT:.0f} s), {settle:.0f} s to "
        f"settle and a {window:.0f} s window; baseline: the same "
        "deployment with no task submitted. `seeker start` and SecantusDB each a process; the "
        f"full fleet is bench/fleet.py's simulated helpers, each slot running a task of an hour.",
        "Operations a second: the database server's opcounters over the window (inserts, "
        "queries, updates, deletes, getmores), the benchmark's two reads of them included.",
        "Tasks not told why they wait: pending with no `wait_reason`, at the window's end; "
        "told after: from the first submit until none was left untold (bench/findings.md 44).",
    ]
    return report(
        NAME,
        f"Backlog: {backlog:,} tasks waiting on a fleet with no room, nothing else happening",
        rows,
        notes=notes,
        quick=quick,
        data={where: {"backlog": s, "baseline": b} for where, (s, b) in cases.items()},
    )


if __name__ == "__main__":
    main(run, NAME)
