"""Idle fleet: what N helpers doing nothing cost the seeker.

Seeker: a database server in its own process (SecantusDB, or
TEST_MONGO_URL), `seeker start` with its default intervals, and
`python -m bench.fleet` with N helpers (bench/fleet.py: the real helper
code less Docker; each beats as often as the seeker asks, on its own
schedule, as a helper's heartbeat does: light heartbeats, and a full
registration every 5 minutes). Push mode and pull mode run apart, each in a
deployment of its own on a fresh database server: pushed helpers are
served by the fleet's one WSGI server and probed by the seeker; pulling
helpers each hold a long poll on a keep-alive connection of their own, all
on one asyncio loop (bench/polls.py), and wait as long as the seeker's
answers say (at least --poll-wait, 25 s; in a large fleet as long as a
heartbeat's interval, N / 50 s). No channel and no tasks. Once every helper has registered (and,
pulling, sent its first poll), 15 s to settle (5 s quick), then over the
window (60 s; 10 s quick): the seeker process's CPU (user + system, as a
share of one core), its resident memory (sampled once a second), its
threads and open file descriptors (at the end), and the database
operations per second (the server's opcounters: only the seeker uses this
server). The fleet's counters say whether the helpers beat as they should
(beats in the window against N x window / the interval the seeker asks for,
15 s or N / 50 s) and how often polls were answered.

In push mode, a second window half as long follows with one dashboard
open (its two requests every 2 s: the first page of 100 helpers, the newest
100 tasks): the seeker's and the database's CPU beside the window before.

Baselines: the other mode, measured the same way just before or after; and
a bare Flask app with one route on `serving.wsgi.BackgroundServer` (16
threads, as the seeker), to which another process holds N keep-alive
connections, each sending one GET every 15 s (bench/idle_bare.py): what
hearing from N helpers costs a server with nothing behind it.

Sizes: 2,000 and 5,000 helpers in each mode (200 quick), or those in
BENCH_IDLE_HELPERS (e.g. `BENCH_IDLE_HELPERS=1000 python -m bench idle`);
`python -m bench.idle --helpers 2000 --window 30` runs alone.
Targets (issue #14): under 10% of one core and under 20 database
operations per second for 5,000 idle helpers, in each mode."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import psutil

from bench.common import (
    MongoServer,
    Service,
    free_ports,
    report,
    wait_until,
)
from bench.deployment import Deployment
from bench.idle_report import notes_for, rows_for
from seeker.client import SeekerClient

NAME = "idle"
MIB = 1024**2
HEARTBEAT = 15.0  # the seeker's shortest interval, and the bare server's beat
BEATS_PER_SECOND = 50.0  # the most the seeker asks of a whole fleet
CPU_TARGET = 10.0  # % of one core
OPS_TARGET = 20.0  # database operations per second
DASHBOARD_EVERY = 2.0  # s: how often the dashboard refreshes its overview
DASHBOARD_PAGE = 100  # helpers a page of the dashboard shows


def sizes(quick: bool) -> list[int]:
    wanted = os.environ.get("BENCH_IDLE_HELPERS")
    if wanted:
        return [int(n) for n in wanted.split(",")]
    return [200] if quick else [2_000, 5_000]


def sample(proc: psutil.Process, seconds: float) -> dict:
    """CPU share, resident memory, threads and descriptors of `proc`."""
    t0, c0 = time.monotonic(), proc.cpu_times()
    rss: list[int] = []
    while time.monotonic() - t0 < seconds:
        rss.append(proc.memory_info().rss)
        time.sleep(1.0)
    elapsed, c1 = time.monotonic() - t0, proc.cpu_times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {
        "cpu_pct": 100 * cpu / elapsed,
        "rss_mib": sum(rss) / len(rss) / MIB,
        "threads": proc.num_threads(),
        "fds": proc.num_fds(),
        "window_s": elapsed,
    }


def cpu_of(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def seeker_idle(n: int, pull: bool, window: float, settle: float, dashboard: float = 0) -> dict:
    """One deployment of `n` idle helpers; the seeker's figures. With
    `dashboard` seconds, a window after the first with one dashboard open
    (dashboard_open)."""
    with (
        MongoServer(NAME) as db,
        tempfile.TemporaryDirectory(prefix="seeker-bench-idle-") as tmp,
        Deployment(Path(tmp), db, n, pull=pull, join_now=False, channel=False) as dep,
    ):
        joined = dep.join()
        if pull:  # every first poll on its way
            wait_until(lambda: dep.counters().get("polling", 0) >= n, 120, "polls", 0.5)
        time.sleep(settle)
        others = {"fleet": dep.fleet.process(), "database": db.process()}
        others_cpu0 = {k: cpu_of(p) for k, p in others.items() if p}
        c0, ops0 = dep.counters(), db.opcounters()
        got = sample(dep.seeker.process(), window)
        c1, ops1 = dep.counters(), db.opcounters()
        got["others_cpu_pct"] = {
            k: 100 * (cpu_of(p) - others_cpu0[k]) / got["window_s"] for k, p in others.items() if p
        }
        if dashboard:
            got["dashboard"] = dashboard_open(dep, others["database"], dashboard)
        for svc in dep.services():
            if svc.proc.poll() is not None:
                raise RuntimeError(f"{svc.name} exited during the window:\n{svc.log()}")
    ops = {k: ops1.get(k, 0) - ops0.get(k, 0) for k in ops1}
    got["db_ops_per_s"] = sum(ops.values()) / got["window_s"]
    got["db_ops"] = ops
    got["join_s"] = joined
    got["fleet"] = {k: c1.get(k, 0) - c0.get(k, 0) for k in c1}
    got["fleet"]["polling"] = c1.get("polling", 0)
    asked = max(HEARTBEAT, n / BEATS_PER_SECOND)  # seeker/control/health.py heartbeat_interval
    got["beat_rate"] = got["fleet"].get("registrations", 0) / (n * got["window_s"] / asked)
    return got


def dashboard_open(dep: Deployment, database: psutil.Process, seconds: float) -> dict:
    """The seeker's and the database's CPU while the dashboard's overview is
    open: every DASHBOARD_EVERY s, its two requests (the first page of
    helpers and the newest tasks), as seeker/api/static/dashboard.js sends
    them."""
    client = SeekerClient(dep.seeker_url, dep.token)
    seeker = dep.seeker.process()
    t0 = time.monotonic()
    c0 = {"seeker": cpu_of(seeker), "database": cpu_of(database)}
    refreshes, sent_kib = 0, 0.0
    while (started := time.monotonic()) - t0 < seconds:
        page = client.helpers_page(DASHBOARD_PAGE)
        client.tasks_page(limit=100)
        sent_kib += len(json.dumps(page)) / 1024
        refreshes += 1
        time.sleep(max(0.0, DASHBOARD_EVERY - (time.monotonic() - started)))
    elapsed = time.monotonic() - t0
    client.close()
    return {
        "seeker_cpu_pct": 100 * (cpu_of(seeker) - c0["seeker"]) / elapsed,
        "database_cpu_pct": 100 * (cpu_of(database) - c0["database"]) / elapsed,
        "refreshes": refreshes,
        "page_kib": sent_kib / max(refreshes, 1),
        "window_s": elapsed,
    }


def bare_idle(n: int, window: float, settle: float) -> dict:
    """The baseline: a bare server holding `n` connections that beat."""
    with tempfile.TemporaryDirectory(prefix="seeker-bench-idle-") as tmp:
        (port,) = free_ports(1)
        url = f"http://127.0.0.1:{port}"
        server = Service("bare", ["bench.idle_bare", "serve", str(port)], Path(tmp))
        holder = Service(
            "holder", ["bench.idle_bare", "hold", url, str(n), str(HEARTBEAT)], Path(tmp)
        )
        try:
            server.start().wait_healthy(url)
            holder.start()
            wait_until(lambda: "ready" in holder.log(), max(120, n / 20), f"{n} connections")
            time.sleep(settle)
            return sample(server.process(), window)
        finally:
            holder.stop()
            server.stop()


def unit_costs(quick: bool) -> dict:
    """Database operations per heartbeat and per poll, made one at a time by
    this process against a seeker that knows one pulling helper (never
    probed), less what the seeker does meanwhile on its own (measured over
    an idle stretch first)."""
    k, idle_s = (10, 5.0) if quick else (50, 20.0)
    with (
        MongoServer(NAME) as db,
        tempfile.TemporaryDirectory(prefix="seeker-bench-idle-") as tmp,
        Deployment(Path(tmp), db, 0, join_now=False, channel=False) as dep,
    ):
        client = SeekerClient(dep.seeker_url, dep.token)
        reg = {
            "helper_id": "unit-cost",
            "name": "unit-cost",
            "mode": "pull",
            "slots": 4,
            "resources": {"cpus": 16.0, "memory_total": 64 * 1024**3, "gpus": []},
            "boot_id": "b1",
            "running": [],
        }
        client.authorize(client.register_helper(reg)["credential"])
        poll = {"boot_id": "b1", "running": [], "done": []}

        def ops_of(step, times: int) -> tuple[float, float]:
            t0, before = time.monotonic(), db.opcounters()
            for _ in range(times):
                step()
            after = db.opcounters()
            return sum(after.values()) - sum(before.values()), time.monotonic() - t0

        background, seconds = ops_of(lambda: time.sleep(idle_s), 1)
        per_s = background / seconds
        out = {"seeker_alone_ops_per_s": per_s}
        for name, step, times in (
            ("heartbeat", lambda: client.heartbeat("unit-cost", {"boot_id": "b1"}), k),
            ("registration", lambda: client.register_helper(reg), k),
            ("poll_at_once", lambda: client.poll_work("unit-cost", {**poll, "wait": 0}, 30), k),
            ("poll_parked", lambda: client.poll_work("unit-cost", {**poll, "wait": 1}, 30), k // 5),
        ):
            ops, took = ops_of(step, times)
            out[name] = max(0.0, ops - per_s * took) / times
        client.close()
    return out


def measure(n: int, window: float, settle: float) -> dict:
    """Push, pull and the bare server with `n` helpers; a side that fails
    (say, a fleet that cannot join in time) is recorded as failed."""
    out = {}
    sides = {
        "push": lambda: seeker_idle(n, False, window, settle, dashboard=window / 2),
        "pull": lambda: seeker_idle(n, True, window, settle),
        "bare": lambda: bare_idle(n, window, settle),
    }
    for side, measure_side in sides.items():
        print(f"idle: {n:,} helpers, {side} ...", flush=True)
        try:
            out[side] = measure_side()
        except Exception as exc:  # recorded: the other sides still tell something
            out[side] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        print(f"idle: {side} {json.dumps(out[side], default=str)}", flush=True)
    out["load"] = os.getloadavg()
    return out


def run(quick: bool = False, helpers: list[int] | None = None, window: float | None = None):
    window = window or (10.0 if quick else 60.0)
    settle = 5.0 if quick else 15.0
    units = unit_costs(quick)
    print(f"idle: database operations per event: {units}", flush=True)
    measured = {n: measure(n, window, settle) for n in (helpers or sizes(quick))}
    rows = [row for n, m in measured.items() for row in rows_for(n, m)]
    rows += [
        ["database operations per heartbeat (light)", f"{units['heartbeat']:.1f}", "", ""],
        ["database operations per full registration", f"{units['registration']:.1f}", "", ""],
        ["database operations per poll answered at once", f"{units['poll_at_once']:.1f}", "", ""],
        [
            "database operations per poll parked until its wait ends",
            f"{units['poll_parked']:.1f}",
            "",
            "",
        ],
        [
            "database operations per second of a seeker with one idle helper",
            f"{units['seeker_alone_ops_per_s']:.1f}",
            "",
            "",
        ],
    ]
    met = all(
        m[mode].get("cpu_pct", CPU_TARGET) < CPU_TARGET
        and m[mode].get("db_ops_per_s", OPS_TARGET) < OPS_TARGET
        for m in measured.values()
        for mode in ("push", "pull")
    )
    notes = [
        f"Each mode in a deployment of its own (fresh database server, {window:.0f} s window "
        f"after {settle:.0f} s to settle); the seeker at its defaults (probe every 10 s, "
        "liveness 45 s, poll wait 25 s or a heartbeat's interval if longer); helpers beat "
        "and poll as the seeker asks. Bare server: one "
        "keep-alive connection per helper and one GET per helper every 15 s.",
        *(notes_for(n, m) for n, m in measured.items()),
        "The fleet, the database and the benchmark share the machine's 2 cores with the "
        "seeker: a seeker that cannot keep up shows as a fleet beating below its rate.",
        "Per event (last rows): one pulling helper registered on a seeker of its own; its "
        "heartbeats, registrations, polls with wait 0 and polls with wait 1 s one at a time by the "
        "benchmark, the server's operations over them less the seeker's own rate meanwhile "
        "(the last row, measured first). A heartbeat costs a pushed helper the same; a pushed "
        "helper's probe is not measured apart.",
        f"One dashboard open (push mode): for {window / 2:.0f} s after the window, the "
        f"dashboard's two requests every {DASHBOARD_EVERY:g} s (the first "
        f"{DASHBOARD_PAGE} helpers, the newest 100 tasks), against the window before "
        "with none; "
        + "; ".join(
            f"{n:,} helpers: a page of {m['push']['dashboard']['page_kib']:.0f} KiB, "
            f"{m['push']['dashboard']['refreshes']} refreshes"
            for n, m in measured.items()
            if "dashboard" in m["push"]
        )
        + " (bench/findings.md 61: before pages, the whole list of 5,000 was 3.1 MB "
        "and doubled what the fleet cost).",
    ]
    largest = max(measured)
    return report(
        NAME,
        f"Idle fleet: {', '.join(f'{n:,}' for n in measured)} helpers in each mode",
        rows,
        target=f"under {CPU_TARGET:g}% of one core and under {OPS_TARGET:g} database operations "
        "per second for 5,000 idle helpers, in each mode",
        met=met if largest >= 5_000 else None,
        notes=notes,
        quick=quick,
        data={"per_event": units, **{str(n): m for n, m in measured.items()}},
    )


def profile() -> str:
    """Sample the seeker (every thread not idle: where its workers wait) and
    the database (the thread holding the GIL) for 20 s while 2,000 pulling
    helpers idle, then the same with 2,000 pushed helpers."""
    from bench.profiling import PROFILES, py_spy, summarize

    out = []
    for pull in (True, False):
        mode = "pull" if pull else "push"
        with (
            MongoServer(NAME) as db,
            tempfile.TemporaryDirectory(prefix="seeker-bench-idle-") as tmp,
            Deployment(Path(tmp), db, 2_000, pull=pull, channel=False) as dep,
        ):
            time.sleep(15)
            raws = {k: PROFILES / f"idle-{mode}-{k}.raw" for k in ("seeker", "database")}
            spies = [
                py_spy(dep.seeker.proc.pid, 20, raws["seeker"], gil=False),
                py_spy(db.proc.pid, 20, raws["database"]),
            ]
            for spy in spies:
                spy.wait()
            fleet = dep.counters()
        out.append(f"##### 2,000 {mode} helpers, idle; the fleet's counters: {fleet}\n")
        every = summarize(raws["seeker"], sampled="every thread, a database call included")
        out.append(f"=== seeker, every thread not idle\n{every}")
        out.append(f"=== database, the GIL's holder\n{summarize(raws['database'])}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle")
    parser.add_argument("--quick", action="store_true", help="a smoke test")
    parser.add_argument("--helpers", type=int, nargs="*", help="fleet sizes (default: 2000 5000)")
    parser.add_argument("--window", type=float, help="seconds measured (default: 60, quick 10)")
    args = parser.parse_args()
    result = run(args.quick, args.helpers, args.window)
    from bench.render import section

    print(section(result))


if __name__ == "__main__":
    main()
