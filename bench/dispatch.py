"""Dispatch throughput: 200 helpers whose containers finish at once, and
thousands of tasks through a real seeker.

Seeker, end to end: a database (SecantusDB in its own process, or
TEST_MONGO_URL), `channel start` and `seeker start` as real processes, and
`python -m bench.fleet`: one process hosting 200 helpers, each the real
helper code less Docker and its own HTTP server (Executor, fsync'd Outbox,
the helper's Flask app), all behind one WSGI server under /h/<n>/ (see
bench/fleet.py). Tasks (`seeker-demo:latest`, `true`) are submitted through
the REST API by 8 client threads; the clock runs from the first submit until
the seeker's database shows every task succeeded, and the channel is then
checked to hold one result per task. So every task takes: POST /tasks, a
dispatch pass (select() over 200 helpers), the push (HTTP), the helper's
"running" event, its outbox (two fsync'd entries), the result POST to the
channel and the final event, which settles the task. Not included: Docker
(the runtime is fake), process start-up, registering the helpers.
Everything shares the machine's 2 cores, so the fleet's and the channel's
CPU is paid out of the same budget; each process's CPU per task is shown,
and how many times its threads were woken per task.

Baseline, right after, on a database server of its own (fresh, as the
seeker's was; the same TEST_MONGO_URL server when set): the writes one task's
life needed in Seeker's data model as first built (insert the task, assign
it, insert the assignment, move it to accepted, running, finished, move the
task to running and to succeeded, insert the result: 9 writes; Seeker now
makes 7 and the event log's insert), made straight with pymongo by 8
threads, for as many tasks as the seeker ran: kept as it was, so that runs
stay comparable.

Beside them, the floor under the CPU per task: one HTTP exchange as the
services make it with nothing behind it (bench/exchange.py), each end's
CPU, times a task's exchanges (push, report, result: both ends; submit:
the seeker's end), and that plus the task's database operations at the
CPU a bare pymongo write cost the baseline's process.

Size: 10,000 tasks against TEST_MONGO_URL; against SecantusDB 0.7.0b3 only
500 (100 quick), because there every findAndModify scans its whole
collection (bench/findings.md), so each task costs more than the last and
10,000 would take hours. Nothing is extrapolated from the smaller run.
Target: at least 300 tasks/s end to end."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench import exchange
from bench.common import (
    MongoServer,
    Service,
    cpu_model,
    cpu_seconds,
    fmt_ratio,
    free_ports,
    main,
    ratio,
    report,
    thread_wakes,
    woken,
)
from bench.deployment import CLIENTS, HELPERS, SLOTS, Deployment
from bench.dispatch_baseline import RAW_WRITES, raw_writes
from bench.threads import by_thread, split_line, thread_cpu, thread_names

NAME = "dispatch"
TARGET = 300.0
# issue #14, per task: database operations, and the services' CPU (seeker,
# channel, helpers) at most a third of what the code of the issue's day
# spent: 19.3 ms on the AMD EPYC it was measured on. The machine moves that
# figure more than the target's margin, so where the same code was run
# again on another machine, beside this code, a third of its figure there is
# the target (bench/findings.md, 20 and 55)
OPS_TARGET = 8.0
ISSUE_CODE = "9545cb4"  # the code the issue measured: this wave began on it
ISSUE_CPU_MS = {
    "AMD EPYC": 19.3,  # as the issue measured it
    # 2026-12-05, five runs of 500 tasks alternating with 67926c4: 14.56-15.12 ms
    "Intel(R) Xeon(R) Processor": 14.8,
}
ISSUE_CPU_AS_FILED = "AMD EPYC"
SERVICES = ("seeker", "channel", "fleet")  # whose CPU the per-task target counts


def cpu_target(cpu: str) -> tuple[float, str]:
    """Issue #14's per-task CPU target in ms on a machine whose processor
    is `cpu`, and what it is a third of."""
    if cpu in ISSUE_CPU_MS:
        return ISSUE_CPU_MS[cpu] / 3, (
            f"a third of the {ISSUE_CPU_MS[cpu]} ms the code of the issue's day "
            f"({ISSUE_CODE}) spent on this processor ({cpu})"
        )
    filed = ISSUE_CPU_MS[ISSUE_CPU_AS_FILED]
    return filed / 3, (
        f"a third of the {filed} ms the issue measured on an {ISSUE_CPU_AS_FILED}; its code "
        f"({ISSUE_CODE}) was not run on this processor ({cpu}), so this verdict compares "
        "figures of two machines"
    )


WAKES_NOTE = (
    "Threads woken: the times each service's threads blocked and were woken again over the "
    "run (voluntary context switches, /proc), per task: a thread waiting for a database "
    "reply, a request or an answer, or for another thread to hand it work. Only threads "
    "alive at the end are counted, so the fleet's leaves out the thread each run had. A "
    "count, it moves far less with the machine's speed than the CPU does (bench/findings.md, "
    "32)."
)

# a task's HTTP exchanges: the push, the helper's report and its result
# (the services' CPU at both ends), and the submit (the seeker's end only:
# its client is the benchmark)
EXCHANGES_BOTH_ENDS = 3
EXCHANGES_SERVER_END = 1


def transport_floor(tmp: Path, n: int = 1_000) -> tuple[float, float]:
    """(client, server) CPU seconds of one exchange with nothing behind it
    (bench/exchange.py), in a server process of its own."""
    (port,) = free_ports(1)
    service = Service("exchange", ["bench.exchange", str(port)], tmp)
    service.start().wait_healthy(f"http://127.0.0.1:{port}")
    try:
        return exchange.measure(port, service.process(), n)
    finally:
        service.stop()


def met_word(met: bool) -> str:
    return "met" if met else "missed"


def run(quick: bool = False) -> dict:
    sizes = {True: (1_000, 10_000), False: (100, 500)}[bool(os.environ.get("TEST_MONGO_URL"))]
    n = sizes[0] if quick else sizes[1]
    n_raw = n
    with (
        MongoServer(NAME) as db,
        tempfile.TemporaryDirectory(prefix="seeker-bench-") as tmp,
        Deployment(Path(tmp), db) as dep,
    ):
        procs = dep.processes()
        warm = 40
        dep.push_tasks(warm)  # connections, caches
        cpu0 = {k: cpu_seconds(p) for k, p in procs.items()}
        wakes0 = {k: thread_wakes(p) for k, p in procs.items()}
        threads0 = {k: thread_cpu(p.pid) for k, p in procs.items() if k in SERVICES}
        ops0, beats0, reads0 = db.opcounters(), dep.counters(), dep.reads
        wall = dep.push_tasks(n, already=warm)
        ops1, beats1, own = db.opcounters(), dep.counters(), dep.reads - reads0
        cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in procs.items()}
        wakes = {k: woken(wakes0[k], thread_wakes(p)) for k, p in procs.items()}
        split = {
            k: by_thread(threads0[k], thread_cpu(procs[k].pid), thread_names(procs[k].pid), cpu[k])
            for k in threads0
        }
        stored = dep.channel_db["results"].count_documents({})
        if stored != warm + n:
            raise RuntimeError(f"{stored} results in the channel for {warm + n} tasks")
    # the baseline gets a fresh server too, whose writes are sent as the
    # services send theirs: plain ones to SecantusDB (serving/database.py),
    # which slows down with every retryable write it has recorded
    with MongoServer(NAME) as raw_db, raw_db.client(**raw_db.write_options()) as c:
        raw_cpu = time.process_time()
        raw_wall = raw_writes(c[raw_db.db_name("raw")], n_raw)
        raw_cpu = time.process_time() - raw_cpu  # pymongo's, in this process
    with tempfile.TemporaryDirectory(prefix="seeker-bench-") as tmp:
        client_s, server_s = transport_floor(Path(tmp))
    floor_ms = 1000 * (
        EXCHANGES_BOTH_ENDS * (client_s + server_s) + EXCHANGES_SERVER_END * server_s
    )
    op_ms = 1000 * raw_cpu / (RAW_WRITES * n_raw)  # a client's CPU per database write
    tps, raw_tps = n / wall, n_raw / raw_wall
    ops = {k: ops1.get(k, 0) - ops0.get(k, 0) for k in ops1}
    ops["command"] = ops.get("command", 0) - own  # the benchmark's own wait for the end
    ops_per_task = sum(ops.values()) / n

    def beats(key: str) -> float:
        return beats1.get(key, 0) - beats0.get(key, 0)

    rows = [
        [
            f"tasks per second ({n:,} tasks; baseline {n_raw:,})",
            f"{tps:.1f}",
            f"{raw_tps:.1f}",
            fmt_ratio(ratio(tps, raw_tps)),
        ],
        [
            "database operations per task",
            f"{ops_per_task:.1f}",
            str(RAW_WRITES),
            fmt_ratio(ops_per_task / RAW_WRITES),
        ],
        ["seeker CPU per task", f"{1000 * cpu['seeker'] / n:.2f} ms", "", ""],
    ]
    for k in ("channel", "fleet", "database"):
        if k in cpu:
            rows.append([f"{k} CPU per task", f"{1000 * cpu[k] / n:.2f} ms", "", ""])
    services_ms = 1000 * sum(cpu.get(k, 0.0) for k in SERVICES) / n
    rows.append(
        ["services' CPU per task (seeker, channel, fleet)", f"{services_ms:.2f} ms", "", ""]
    )
    counted = all(wakes.get(k) is not None for k in SERVICES)
    if counted:
        rows.append(
            [
                "threads woken per task: seeker / channel / fleet",
                " / ".join(f"{wakes[k] / n:.1f}" for k in SERVICES),
                "",
                "",
            ]
        )
    rows.append(
        [
            "HTTP alone per task: the same exchanges with nothing behind them",
            "",
            f"{floor_ms:.2f} ms",
            fmt_ratio(ratio(services_ms, floor_ms)),
        ]
    )
    rows.append(
        [
            "HTTP alone, plus the database operations made as bare pymongo calls",
            "",
            f"{floor_ms + ops_per_task * op_ms:.2f} ms",
            fmt_ratio(ratio(services_ms, floor_ms + ops_per_task * op_ms)),
        ]
    )
    cpu_target_ms, cpu_target_says = cpu_target(cpu_model())
    per_task_met = ops_per_task <= OPS_TARGET and services_ms <= cpu_target_ms
    notes = [
        f"Seeker: {n:,} tasks in {wall:.1f} s, after {warm} warm-up tasks; {HELPERS} helpers "
        f"of {SLOTS} slots, {CLIENTS} submitting threads; database: {db.kind}.",
        f"Baseline: {n_raw:,} tasks' {RAW_WRITES} writes each in {raw_wall:.1f} s, on a "
        "fresh database server, its writes sent as the services send theirs (plain, "
        "not retryable, on SecantusDB, which slows down as it records retryable writes: "
        "bench/findings.md, 2 and 46).",
        "Database operations per task: the server's opcounters over the run, less the "
        f"benchmark's own {own} counts of the tasks that succeeded (its wait for the end, "
        "every 0.2 s), divided by the tasks (a findAndModify counts as an update; the "
        "helpers' heartbeats and the seeker's probes are in it too): "
        + ", ".join(f"{k} {v / n:.1f}" for k, v in ops.items() if v)
        + ".",
        "Heartbeats during the run (the fleet's counters, written every 2 s): "
        f"{beats('light_beats'):.0f} light heartbeats sent, "
        f"{beats('beats_left_out'):.0f} left out by helpers whose "
        "reports had reached the seeker within the interval (helper/beats.py `quiet_left`).",
        f"CPU over the run, all processes: {sum(cpu.values()):.1f} s in {wall:.1f} s of wall "
        f"time on {2} cores.",
        *([WAKES_NOTE] if counted else []),
        *(
            [
                "CPU per task by kind of thread (bench/threads.py; the names py-spy reads; "
                "`CP Server Thread`: the HTTP server's workers, `wsgi`: its connections' "
                "selector, `push`: the seeker's pushes, `run`: a helper's runs): "
                + "; ".join(split_line(k, v, n) for k, v in split.items() if v)
                + "."
            ]
            if any(split.values())
            else []
        ),
        f"HTTP alone: one exchange (serving.http.JsonClient POSTing a result-sized body to "
        f"a route served as every service's is, token and body checked, nothing stored; "
        f"bench/exchange.py) costs {1000 * client_s:.2f} ms of CPU in the client and "
        f"{1000 * server_s:.2f} ms in the server. A task makes {EXCHANGES_BOTH_ENDS} such "
        f"exchanges between the services (push, report, result) and one whose client is the "
        f"benchmark (submit): {floor_ms:.2f} ms before any database operation or decision. "
        f"The baseline's bare pymongo writes cost its process {op_ms:.2f} ms of CPU each; "
        f"{ops_per_task:.1f} of them per task add {ops_per_task * op_ms:.2f} ms.",
        f"Issue #14, per task: {ops_per_task:.1f} database operations (at most "
        f"{OPS_TARGET:.0f}: {met_word(ops_per_task <= OPS_TARGET)}), {services_ms:.1f} ms of the "
        f"services' CPU (at most {cpu_target_ms:.1f} ms, {cpu_target_says}: "
        f"{met_word(services_ms <= cpu_target_ms)}).",
    ]
    return report(
        NAME,
        f"Dispatch throughput: {HELPERS} helpers, instant containers",
        rows,
        target=(
            "at least 300 tasks/s end to end on 2 cores; per task at most 8 database "
            f"operations and {cpu_target_ms:.1f} ms of the services' CPU (issue #14: a third of "
            "the issue's code's on this machine)"
        ),
        met=tps >= TARGET and per_task_met,
        notes=notes,
        quick=quick,
        data={
            "tasks": n,
            "wall_s": wall,
            "tasks_per_s": tps,
            "baseline_tasks": n_raw,
            "baseline_wall_s": raw_wall,
            "baseline_tasks_per_s": raw_tps,
            "cpu_s": cpu,
            "thread_wakes": wakes,
            "cpu_by_thread_s": split,
            "db_ops": ops,
            "db_ops_per_task": ops_per_task,
            "services_cpu_ms_per_task": services_ms,
            "exchange_client_ms": 1000 * client_s,
            "exchange_server_ms": 1000 * server_s,
            "http_floor_ms_per_task": floor_ms,
            "baseline_cpu_ms_per_write": op_ms,
        },
    )


def profile() -> str:
    """Sample the seeker, the channel, the fleet and the database processes
    with py-spy while 200 tasks go through."""
    from bench.profiling import PROFILES, py_spy, summarize

    out = []
    with (
        MongoServer(NAME) as db,
        tempfile.TemporaryDirectory(prefix="seeker-bench-") as tmp,
        Deployment(Path(tmp), db) as dep,
    ):
        dep.push_tasks(40)
        spies = {
            "seeker": py_spy(dep.seeker.proc.pid, 20, PROFILES / "dispatch-seeker.raw"),
            "channel": py_spy(dep.channel.proc.pid, 20, PROFILES / "dispatch-channel.raw"),
            "fleet": py_spy(dep.fleet.proc.pid, 20, PROFILES / "dispatch-fleet.raw"),
            "database": py_spy(db.proc.pid, 20, PROFILES / "dispatch-database.raw"),
        }
        time.sleep(1)
        wall = dep.push_tasks(200, already=40)
        for spy in spies.values():
            spy.wait()
    out.append(f"200 tasks in {wall:.1f} s; every process sampled for 20 s\n")
    for name in spies:
        out.append(f"=== {name}\n" + summarize(PROFILES / f"dispatch-{name}.raw"))
    return "\n".join(out)


if __name__ == "__main__":
    main(run, NAME)
