"""Overhead: trivial containers (busybox `true` in seeker-demo:latest)
through Seeker against the same containers run straight with the Docker SDK.

Seeker: `seeker.up.Stack` in this process, as `seeker up --slots 4` runs it
(seeker, channel and one helper with 4 slots), on a database in a process
of its own (SecantusDB, or TEST_MONGO_URL): the services' CPU is this
process's less the benchmark client's (its main thread: the submits and
the event-log reads), and the database's is shown apart (issue #14: the
pure-Python server's time is reported, not the target). The clock starts
before the first `SeekerClient.submit` and stops when every task has ended
and every result is stored in the channel: the client follows the
seeker's event log (`GET /api/v1/events`, one indexed query every 50 ms
for all tasks, as a batch client or a `--notify-url` receiver would,
rather than one task's full state per poll), then counts the results in
the channel's database (the helper posts the result and reports the end
in two outbox lanes, so the one may trail the other). Included: the REST
submit, the dispatch, the push, the helper's Docker calls (create, which
is also the image check, start, wait, both log streams in one request, the
/output archive probe, remove; an inspect after a run only on a non-zero
exit or with a memory limit), the outbox (fsync), the result POST, the
events. Not included: starting the stack, building the image.
Baseline: 4 threads doing create/start/wait/logs(stdout)/logs(stderr)/remove
with the Docker SDK and the same container settings the helper uses
(capabilities dropped, no-new-privileges, pids limit, bridge network).
The two alternate, a round each, the stack idling during the baseline.
Targets (issue #14): Seeker's wall time at most 1.05x the SDK's, and the
services' CPU per container at most 3x the SDK process's."""

from __future__ import annotations

import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import psutil

from bench.common import IMAGE, MongoServer, cpu_seconds, fmt_ratio, fmt_s, main, ratio, report
from seeker.client import SeekerClient
from seeker.models import TaskState
from seeker.process.up import Stack
from seeker.store.events import TASK_SUCCEEDED

NAME = "overhead"
TARGET = 1.05  # wall time, to the SDK's
CPU_TARGET = 3.0  # the services' CPU per container, to the SDK process's
SLOTS = 4
BENCH_LABEL = "io.seeker.bench"
HELPER_LABEL = "io.seeker.helper"


def sdk_batch(client: docker.DockerClient, n: int, run_id: str, tag: str) -> float:
    """Run `n` containers on SLOTS threads; returns the wall time."""

    def one(i: int) -> int:
        c = client.containers.create(
            IMAGE,
            ["true"],
            name=f"bench-{run_id}-{tag}-{i}",
            labels={BENCH_LABEL: run_id},
            detach=True,
            network_mode="bridge",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=1024,
        )
        try:
            c.start()
            code = c.wait()["StatusCode"]
            c.logs(stdout=True, stderr=False)
            c.logs(stdout=False, stderr=True)
        finally:
            c.remove(force=True)
        return code

    t0 = time.perf_counter()
    with ThreadPoolExecutor(SLOTS) as pool:
        codes = list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    if any(codes):
        raise RuntimeError(f"SDK baseline: exit codes {sorted(set(codes))}")
    return wall


def seeker_batch(stack: Stack, client: SeekerClient, n: int) -> float:
    """Submit `n` tasks and wait for all; returns the wall time."""
    results = stack.channel_db["results"]
    before = results.count_documents({})
    seq = last_event(client)
    t0 = time.perf_counter()
    ids = [client.submit(IMAGE, ["true"])["task_id"] for _ in range(n)]
    ended = wait_ended(client, set(ids), seq, deadline=time.monotonic() + 600)
    while results.count_documents({}) - before < n:
        if time.monotonic() > t0 + 600:
            raise RuntimeError("Seeker: results missing from the channel after 600 s")
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    if set(ended.values()) != {TASK_SUCCEEDED}:
        raise RuntimeError(f"Seeker: task ends {sorted(set(ended.values()))}")
    if {client.get(i)["state"] for i in ids} != {TaskState.SUCCEEDED}:
        raise RuntimeError("Seeker: a task's state disagrees with the event log")
    return wall


def events_after(client: SeekerClient, seq: int) -> list[dict]:
    return client.request("GET", "/api/v1/events", params={"after": seq, "limit": 1000})["events"]


def last_event(client: SeekerClient) -> int:
    seq = 0
    while page := events_after(client, seq):
        seq = page[-1]["seq"]
    return seq


def wait_ended(client: SeekerClient, ids: set[str], seq: int, deadline: float) -> dict:
    """Follow the event log until every task in `ids` has ended; returns
    task id -> the kind of its end event."""
    ended: dict[str, str] = {}
    while len(ended) < len(ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Seeker: {len(ids) - len(ended)} tasks did not end")
        page = events_after(client, seq)
        for event in page:
            if event.get("task_id") in ids:
                ended[event["task_id"]] = event["type"]
        if page:
            seq = page[-1]["seq"]
        else:
            time.sleep(0.05)
    return ended


def phases(stack: Stack) -> dict[str, float]:
    """Median seconds of each step of a task's life, from the seeker's
    assignment records and the channel's results (one process: one clock)."""
    from statistics import median

    from seeker.placement.capacity import as_utc

    seeker_db, channel_db = stack.seeker_db, stack.channel_db
    results = {(r["task_id"], r["attempt"]): r for r in channel_db["results"].find()}
    steps: dict[str, list[float]] = {k: [] for k in PHASES}
    done = sorted(as_utc(a["finished_at"]) for a in seeker_db["assignments"].find())
    for a in seeker_db["assignments"].find():
        r = results.get((a["task_id"], a["attempt"]))
        # accepted_at: recorded with the first report, unless that overtook the push's answer
        if r is None or not a.get("started_at") or not a.get("accepted_at"):
            continue
        started, ended = as_utc(r["started_at"]), as_utc(r["finished_at"])
        assigned = as_utc(a["assigned_at"])
        steps["push (assigned -> accepted)"].append((a["accepted_at"] - assigned).total_seconds())
        steps["image check, create, start (accepted -> running)"].append(
            (started - as_utc(a["accepted_at"])).total_seconds()
        )
        steps["container runs (helper: started -> wait returned)"].append(
            (ended - started).total_seconds()
        )
        steps["logs, archive probe, remove, outbox, result, event"].append(
            (as_utc(a["finished_at"]) - ended).total_seconds()
        )
        before = [t for t in done if t <= assigned]
        if before:
            steps["a slot freed at the seeker -> next assigned"].append(
                (assigned - before[-1]).total_seconds()
            )
    return {k: median(v) for k, v in steps.items() if v}


PHASES = (
    "push (assigned -> accepted)",
    "image check, create, start (accepted -> running)",
    "container runs (helper: started -> wait returned)",
    "logs, archive probe, remove, outbox, result, event",
    "a slot freed at the seeker -> next assigned",
)


def remove_ours(client: docker.DockerClient, run_id: str, helper_id: str | None) -> int:
    """Containers this benchmark made that are still there (none, normally)."""
    found = client.containers.list(all=True, filters={"label": f"{BENCH_LABEL}={run_id}"})
    if helper_id:
        found += client.containers.list(all=True, filters={"label": f"{HELPER_LABEL}={helper_id}"})
    for c in found:
        c.remove(force=True)
    return len(found)


def run(quick: bool = False) -> dict:
    n, rounds = (20, 1) if quick else (100, 2)
    run_id = secrets.token_hex(4)
    token = secrets.token_urlsafe(16)
    client = docker.from_env()
    me = psutil.Process()
    walls: dict[str, list[float]] = {"sdk": [], "seeker": []}
    # CPU seconds: this process (for Seeker less its client), its database
    cpu: dict[str, float] = {"sdk": 0.0, "seeker": 0.0, "client": 0.0, "database": 0.0}
    helper_id = None
    with (
        tempfile.TemporaryDirectory(prefix="seeker-bench-overhead-") as tmp,
        MongoServer(NAME) as db,
    ):
        stack = Stack(
            Path(tmp),
            token,
            mongo_url=db.url,
            seeker_port=0,
            channel_port=0,
            helper_port=0,
            slots=SLOTS,
            helper_name=f"bench-{run_id}",
            databases=(db.db_name("seeker"), db.db_name("channel")),
        )
        db_proc = db.process()
        try:
            stack.start()
            helper_id = stack.helper.helper_id
            if not stack.helper.wait_registered(30):
                raise RuntimeError("the helper did not register")
            seeker = SeekerClient(stack.seeker.url, token)
            sdk_batch(client, SLOTS, run_id, "warm")  # warm up both paths
            seeker_batch(stack, seeker, SLOTS)
            for r in range(rounds):
                order = ("sdk", "seeker") if r % 2 == 0 else ("seeker", "sdk")
                for way in order:
                    c0, t0 = cpu_seconds(me), time.thread_time()
                    d0 = cpu_seconds(db_proc) if db_proc else 0.0
                    if way == "sdk":
                        walls[way].append(sdk_batch(client, n, run_id, f"r{r}"))
                    else:
                        walls[way].append(seeker_batch(stack, seeker, n))
                    mine = time.thread_time() - t0
                    if way == "sdk":
                        cpu["sdk"] += cpu_seconds(me) - c0
                    else:
                        cpu["seeker"] += cpu_seconds(me) - c0 - mine
                        cpu["client"] += mine
                        cpu["database"] += cpu_seconds(db_proc) - d0 if db_proc else 0.0
            steps = phases(stack)
        finally:
            stack.stop()
            left = remove_ours(client, run_id, helper_id)
            client.close()
    sdk, skr = sum(walls["sdk"]), sum(walls["seeker"])
    r_all = ratio(skr, sdk)
    r_cpu = ratio(cpu["seeker"], cpu["sdk"])
    per = n * rounds
    rows = [
        [
            f"wall time, {n} containers, round {i + 1}",
            fmt_s(walls["seeker"][i]),
            fmt_s(walls["sdk"][i]),
            fmt_ratio(ratio(walls["seeker"][i], walls["sdk"][i])),
        ]
        for i in range(rounds)
    ]
    rows.append([f"wall time, all {per}", fmt_s(skr), fmt_s(sdk), fmt_ratio(r_all)])
    rows.append(
        [
            "containers per second",
            f"{per / skr:.1f}",
            f"{per / sdk:.1f}",
            fmt_ratio(ratio(per / skr, per / sdk)),
        ]
    )
    rows.append(
        [
            "services' CPU per container (seeker, channel, helper)",
            f"{1000 * cpu['seeker'] / per:.1f} ms",
            f"{1000 * cpu['sdk'] / per:.1f} ms",
            fmt_ratio(r_cpu),
        ]
    )
    db_cpu = f"{1000 * cpu['database'] / per:.1f} ms" if db_proc else "— (not measured)"
    rows.append(["database CPU per container", db_cpu, "", ""])
    rows.append(["client CPU per container", f"{1000 * cpu['client'] / per:.1f} ms", "", ""])
    notes = [
        f"{rounds} round(s) of {n} containers each way, alternating (round 2 runs Seeker "
        "first); the Docker engine's own CPU is not in the CPU rows.",
        "Services' CPU: this process, which hosts the seeker, the channel and the helper, "
        "less its main thread, the benchmark client (submits, event-log reads); for the "
        f"baseline the process's 4 SDK threads. Database: {db.kind}.",
    ]
    notes.append(
        "Median step times of Seeker's tasks (seeker and helper clocks, one process): "
        + "; ".join(f"{k}: {1000 * v:.0f} ms" for k, v in steps.items())
        + "."
    )
    if left:
        notes.append(f"{left} container(s) were left behind and removed.")
    return report(
        NAME,
        f"Overhead: {n} trivial containers through Seeker vs the Docker SDK",
        rows,
        target=f"wall time at most {TARGET}x the SDK's, services' CPU at most {CPU_TARGET:.0f}x",
        met=r_all is not None and r_all <= TARGET and r_cpu is not None and r_cpu <= CPU_TARGET,
        notes=notes,
        quick=quick,
        data={
            "n": n,
            "rounds": rounds,
            "walls": walls,
            "cpu_s": cpu,
            "ratio": r_all,
            "cpu_ratio": r_cpu,
            "phases_s": steps,
        },
    )


def profile() -> str:
    """Sample this process (the whole stack) with py-spy while 40 containers
    run through Seeker."""
    import os

    from bench.profiling import PROFILES, py_spy, summarize

    run_id, token = secrets.token_hex(4), secrets.token_urlsafe(16)
    client = docker.from_env()
    raw = PROFILES / "overhead.raw"
    with tempfile.TemporaryDirectory(prefix="seeker-bench-overhead-") as tmp:
        stack = Stack(Path(tmp), token, None, "127.0.0.1", 0, 0, 0, SLOTS, f"bench-{run_id}")
        try:
            stack.start()
            stack.helper.wait_registered(30)
            seeker = SeekerClient(stack.seeker.url, token)
            seeker_batch(stack, seeker, SLOTS)
            spy = py_spy(os.getpid(), 15, raw)
            time.sleep(1)
            wall = seeker_batch(stack, seeker, 40)
            spy.wait()
        finally:
            stack.stop()
            remove_ours(client, run_id, stack.helper.helper_id)
            client.close()
    return f"40 containers through Seeker in {wall:.1f} s, sampled 15 s\n\n" + summarize(raw)


if __name__ == "__main__":
    main(run, NAME)
