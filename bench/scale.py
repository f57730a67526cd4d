"""Per task in a large fleet: trivial tasks one at a time through 2,000
simulated helpers, beside the same through 200.

Each side: a database in its own process (SecantusDB, or TEST_MONGO_URL),
`channel start`, `seeker start` at its defaults and `python -m bench.fleet`
(the helpers, with an instant runtime: bench/fleet.py), as `bench dispatch`
deploys them. After five warm-up tasks, and 30 s after the fleet joined
(its registrations, and the heartbeat interval each helper is told at its
first beat, 15 s after it joined, are changes a pass reads), N tasks (`seeker-demo:latest`,
`true`) are submitted one after another, each waited for (a blocking query)
before the next: a trickle, where every task has a placement pass of its
own, so what a pass costs per helper shows in full (a burst shares its
passes among its tasks: `bench dispatch`). Measured over those N tasks: the
wall time a task took, and the CPU time of the seeker, the channel, the
fleet and the database processes, per task. The idle fleet's own cost (its
heartbeats, the seeker's probes) is in the figures; `bench idle` gives it
apart.

Baseline: the same with 200 helpers, in the same run. What a fleet ten times
larger may add is what the placement pass reads and builds per helper: a
pass reads the registry's documents changed since the last one (and the
whole registry every 10 s), and builds each helper's view and row.

Then a busy fleet beside that idle one: the same 2,000 helpers, 1 of each
one's 4 slots taken by a run of an hour (2,000 live assignments, submitted
as arrays and all running before the clock starts), and the same trickle
into the slots left. What that adds is what a pass reads and groups of
the live assignments: with 256 or more live, a pass reads those changed
since the last and all of them every 10 s (bench/findings.md 59; every
pass read them all before, 57)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import (
    IMAGE,
    MongoServer,
    cpu_seconds,
    fmt_ms,
    fmt_ratio,
    main,
    ratio,
    report,
    wait_until,
)
from bench.deployment import Deployment
from seeker.client import SeekerClient
from seeker.models import TaskState

NAME = "scale"
SIZES = (200, 2_000)
WARM = 5
# seconds from the fleet's joining to the measured tasks: a joining fleet is
# no steady state (its registrations, then the heartbeat interval each helper
# is told at its first beat, 15 s in, are changes a pass reads)
SETTLE = 30.0
BUSY = 1  # of each helper's 4 slots, taken by a run of an hour in the busy fleet
ARRAY = 1_000  # the busy fleet's runs are submitted as arrays of this many


def trickle(helpers: int, n: int, busy: int = 0) -> dict:
    """`n` tasks one at a time into `helpers` simulated helpers, `busy` of
    whose slots each are taken by a run of an hour first."""
    with (
        MongoServer(f"{NAME}{helpers}") as db,
        tempfile.TemporaryDirectory(prefix="seeker-bench-") as tmp,
        Deployment(Path(tmp), db, helpers=helpers) as dep,
    ):
        joined = time.monotonic()
        procs = dep.processes()
        client = SeekerClient(dep.seeker_url, dep.token, timeout=120)
        try:
            if busy:
                take_slots(client, dep, helpers * busy)
            for _ in range(WARM):
                client.wait(client.submit(IMAGE, ["true"])["task_id"], timeout=120)
            time.sleep(max(0.0, joined + SETTLE - time.monotonic()))
            cpu0 = {k: cpu_seconds(p) for k, p in procs.items()}
            ops0 = db.opcounters()
            t0 = time.perf_counter()
            for _ in range(n):
                client.wait(client.submit(IMAGE, ["true"])["task_id"], timeout=120)
            wall = time.perf_counter() - t0
            cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in procs.items()}
            ops = db.opcounters()
        finally:
            client.close()
    return {
        "helpers": helpers,
        "busy": helpers * busy,
        "tasks": n,
        "wall_ms": 1000 * wall / n,
        "cpu_ms": {k: 1000 * v / n for k, v in cpu.items()},
        "db_ops_per_task": sum(ops[k] - ops0[k] for k in ops) / n,
    }


def take_slots(client: SeekerClient, dep: Deployment, runs: int) -> None:
    """Submit `runs` runs of an hour (arrays) and wait until all run."""
    for start in range(0, runs, ARRAY):
        client.submit_array(IMAGE, ["sleep", "3600"], array=min(ARRAY, runs - start))
    tasks = dep.seeker_db["tasks"]
    wait_until(
        lambda: tasks.count_documents({"state": TaskState.RUNNING}) == runs,
        max(300, runs / 10),
        f"{runs:,} runs of an hour running",
        2.0,
    )


def compare(rows: list[list[str]], label: str, seeker: dict, baseline: dict) -> None:
    """The rows of one trickle beside another's."""

    def row(what: str, key) -> None:
        a, b = key(seeker), key(baseline)
        rows.append([f"{label}{what}", fmt_ms(a / 1000), fmt_ms(b / 1000), fmt_ratio(ratio(a, b))])

    row("wall time per task", lambda r: r["wall_ms"])
    for proc in ("seeker", "channel", "fleet", "database"):
        row(f"{proc} CPU per task", lambda r, p=proc: r["cpu_ms"].get(p, 0.0))
    services = ("seeker", "channel", "fleet")
    row("services' CPU per task", lambda r: sum(r["cpu_ms"].get(p, 0.0) for p in services))
    a, b = seeker["db_ops_per_task"], baseline["db_ops_per_task"]
    rows.append(
        [f"{label}database operations per task", f"{a:.1f}", f"{b:.1f}", fmt_ratio(ratio(a, b))]
    )


def run(quick: bool = False) -> dict:
    n = 10 if quick else 60
    small, large = (trickle(size, n) for size in SIZES)
    busy = trickle(SIZES[1], n, busy=BUSY)
    rows: list[list[str]] = []
    compare(rows, "", large, small)
    compare(rows, f"busy ({busy['busy']:,} running) vs idle {SIZES[1]:,}: ", busy, large)
    return report(
        NAME,
        f"Per task in a large fleet: tasks one at a time, {SIZES[1]:,} helpers vs {SIZES[0]}",
        rows,
        notes=[
            f"Seeker column: {SIZES[1]:,} simulated helpers of 4 slots; baseline: {SIZES[0]}. "
            f"{n} tasks each, one after another (each waited for), after {WARM} warm-up "
            f"tasks and at least {SETTLE:.0f} s after the fleet joined; database: SecantusDB, "
            "own process.",
            "Each task has a placement pass of its own; the idle fleet's heartbeats and the "
            "seeker's probes during the run are in the CPU figures.",
            f"Busy rows: the same {SIZES[1]:,} helpers with {BUSY} of each one's 4 slots taken by "
            f"a run of an hour ({busy['busy']:,} live assignments, submitted as arrays of "
            f"{ARRAY:,} and all running before the clock started), beside the idle "
            f"{SIZES[1]:,}: the same trickle into the slots left. A placement pass reads the live "
            "assignments changed since the last, and all of them every 10 s "
            "(bench/findings.md 59).",
        ],
        data={"small": small, "large": large, "busy": busy},
        quick=quick,
    )


if __name__ == "__main__":
    main(run, NAME)
