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
whole registry every 10 s), and builds each helper's view and row."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import IMAGE, MongoServer, cpu_seconds, fmt_ms, fmt_ratio, main, ratio, report
from bench.deployment import Deployment
from seeker.client import SeekerClient

NAME = "scale"
SIZES = (200, 2_000)
WARM = 5
# seconds from the fleet's joining to the measured tasks: a joining fleet is
# no steady state (its registrations, then the heartbeat interval each helper
# is told at its first beat, 15 s in, are changes a pass reads)
SETTLE = 30.0


def trickle(helpers: int, n: int) -> dict:
    with (
        MongoServer(f"{NAME}{helpers}") as db,
        tempfile.TemporaryDirectory(prefix="seeker-bench-") as tmp,
        Deployment(Path(tmp), db, helpers=helpers) as dep,
    ):
        joined = time.monotonic()
        procs = dep.processes()
        client = SeekerClient(dep.seeker_url, dep.token, timeout=60)
        try:
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
        "tasks": n,
        "wall_ms": 1000 * wall / n,
        "cpu_ms": {k: 1000 * v / n for k, v in cpu.items()},
        "db_ops_per_task": sum(ops[k] - ops0[k] for k in ops) / n,
    }


def run(quick: bool = False) -> dict:
    n = 10 if quick else 60
    small, large = (trickle(size, n) for size in SIZES)
    rows = []

    def row(what: str, key) -> None:
        a, b = key(large), key(small)
        rows.append([what, fmt_ms(a / 1000), fmt_ms(b / 1000), fmt_ratio(ratio(a, b))])

    row("wall time per task", lambda r: r["wall_ms"])
    for proc in ("seeker", "channel", "fleet", "database"):
        row(f"{proc} CPU per task", lambda r, p=proc: r["cpu_ms"].get(p, 0.0))
    services = ("seeker", "channel", "fleet")
    row("services' CPU per task", lambda r: sum(r["cpu_ms"].get(p, 0.0) for p in services))
    rows.append(
        [
            "database operations per task",
            f"{large['db_ops_per_task']:.1f}",
            f"{small['db_ops_per_task']:.1f}",
            fmt_ratio(ratio(large["db_ops_per_task"], small["db_ops_per_task"])),
        ]
    )
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
        ],
        data={"small": small, "large": large},
        quick=quick,
    )


if __name__ == "__main__":
    main(run, NAME)
