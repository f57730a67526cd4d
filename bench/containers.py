"""The two ways `bench overhead` runs a batch of trivial containers, and
what it reads of how they went: straight through the Docker SDK on as many
threads as slots, or through a Seeker stack (submitted, then followed on
the event log until every result is in the channel); the median time of
each step of Seeker's tasks; the containers a run left; the CPU every
process on the machine used."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import docker
import psutil

from bench.common import IMAGE
from seeker.client import SeekerClient
from seeker.models import TaskState
from seeker.process.up import Stack
from seeker.store.events import TASK_SUCCEEDED

BENCH_LABEL = "io.seeker.bench"
HELPER_LABEL = "io.seeker.helper"


def sdk_batch(client: docker.DockerClient, n: int, run_id: str, tag: str, slots: int) -> float:
    """Run `n` containers on `slots` threads; returns the wall time."""

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
    with ThreadPoolExecutor(slots) as pool:
        codes = list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    if any(codes):
        raise RuntimeError(f"SDK baseline: exit codes {sorted(set(codes))}")
    return wall


def seeker_batch(stack: Stack, client: SeekerClient, n: int) -> tuple[float, list[str]]:
    """Submit `n` tasks and wait for all; returns the wall time and the
    tasks' ids, for `check_succeeded` once the batch's CPU is counted."""
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
    return wall, ids


def check_succeeded(client: SeekerClient, ids: list[str]) -> None:
    """Each task's own record agrees with the event log: a GET of each,
    which costs the seeker about 1 ms and its database 0.7 ms a task, so
    it is made outside the batch's measured CPU (until 2026-12-03 it was
    counted as the stack's)."""
    if {client.get(i)["state"] for i in ids} != {TaskState.SUCCEEDED}:
        raise RuntimeError("Seeker: a task's state disagrees with the event log")


def events_after(client: SeekerClient, seq: int, wait: int = 0) -> list[dict]:
    """The events after `seq`; with `wait`, the first ones to come (a
    blocking query), or none once `wait` seconds passed."""
    return client.events(seq, 1000, wait)["events"]


def last_event(client: SeekerClient) -> int:
    seq = 0
    while page := events_after(client, seq):
        seq = page[-1]["seq"]
    return seq


def wait_ended(client: SeekerClient, ids: set[str], seq: int, deadline: float) -> dict:
    """Follow the event log until every task in `ids` has ended (blocking
    queries: each answered at the next event); returns task id -> the kind
    of its end event."""
    ended: dict[str, str] = {}
    while len(ended) < len(ids):
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"Seeker: {len(ids) - len(ended)} tasks did not end")
        page = events_after(client, seq, wait=max(1, min(60, int(left))))
        for event in page:
            if event.get("task_id") in ids:
                ended[event["task_id"]] = event["type"]
        if page:
            seq = page[-1]["seq"]
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


def remove_ours(client: docker.DockerClient, run_id: str, helper_ids: list[str]) -> int:
    """Containers this benchmark made that are still there (none, normally)."""
    found = client.containers.list(all=True, filters={"label": f"{BENCH_LABEL}={run_id}"})
    for helper_id in helper_ids:
        found += client.containers.list(all=True, filters={"label": f"{HELPER_LABEL}={helper_id}"})
    for c in found:
        c.remove(force=True)
    return len(found)


def machine_busy() -> float:
    """CPU seconds every process on the machine has used (all cores)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
