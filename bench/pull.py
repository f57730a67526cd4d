"""Pull mode's latency: a trivial task's submit-to-result time on a pulling
helper against the same on a pushed one.

Both sides: a database in its own process (SecantusDB, or TEST_MONGO_URL),
`channel start`, `seeker start` at its defaults, and two real helpers
(`helper start --slots 1`, real Docker): one `--pull --label bench=pull`,
one pushed with `--label bench=push`. Each task is `seeker-demo:latest`
running `true`, with the constraint `bench=pull` or `bench=push` to send it
to the helper meant. One task at a time, the modes in alternating rounds
(pull, push, push, pull, ...). The clock starts before the REST submit and
stops when the task's result can be read back through the seeker: the
client follows the seeker's event log (`GET /api/v1/events`, every 20 ms)
until the task's end event, then asks `GET /api/v1/tasks/<id>/results`
(every 20 ms) until the result is there (the result and the end event
travel in two outbox lanes). Included: the submit, the dispatch pass, the
push or the offer on the parked poll and its acknowledgement, the
container (create, start, wait, logs, remove), the outbox, the result,
the events. Not included: starting the services. A warm-up task on each
helper is not counted.

The median step times of each mode come from the seeker's assignment
records (one clock: one machine): task created -> assigned, assigned ->
accepted (the push, or the offer, the poll's answer and the
acknowledgement), accepted -> running, running -> finished.

Target (issue #12): the median on the pulling helper within 1.2x of the
pushed one."""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path
from statistics import median

from bench.common import (
    IMAGE,
    MongoServer,
    fmt_ratio,
    fmt_s,
    main,
    percentile,
    ratio,
    report,
)
from bench.containers import events_after, last_event
from bench.deployment import Cluster
from seeker.client import SeekerClient
from seeker.placement.capacity import as_utc
from seeker.store.events import TASK_SUCCEEDED

NAME = "pull"
TARGET = 1.2
EVERY = 0.02  # seconds between the client's looks at the event log and the result
MODES = ("pull", "push")


def one_task(client: SeekerClient, mode: str, seq: int, timeout: float = 120) -> tuple:
    """Submit a trivial task for the `mode` helper and wait for its result;
    returns (seconds, task id, the event log's last seq)."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    task_id = client.submit(IMAGE, ["true"], constraints={"bench": mode})["task_id"]
    end = None
    while end is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{mode}: task {task_id} did not end in {timeout} s")
        page = events_after(client, seq)
        for event in page:
            if event.get("task_id") == task_id:
                end = event["type"]
        if page:
            seq = page[-1]["seq"]
        else:
            time.sleep(EVERY)
    while not client.results(task_id):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{mode}: the result of {task_id} is missing")
        time.sleep(EVERY)
    wall = time.perf_counter() - t0
    if end != TASK_SUCCEEDED:
        raise RuntimeError(f"{mode}: task {task_id} ended with {end}")
    return wall, task_id, seq


def steps(cluster: Cluster, task_ids: list[str]) -> dict[str, float]:
    """Median seconds of each step of these tasks' lives (seeker records)."""
    db = cluster.seeker_db
    created = {
        t["_id"]: as_utc(t["created_at"]) for t in db["tasks"].find({"_id": {"$in": task_ids}})
    }
    out: dict[str, list[float]] = {k: [] for k in STEPS}
    for a in db["assignments"].find({"task_id": {"$in": task_ids}}):
        at = [as_utc(a.get(k)) for k in ("assigned_at", "accepted_at", "started_at", "finished_at")]
        if None in at:
            continue
        at.insert(0, created[a["task_id"]])
        for name, (t0, t1) in zip(STEPS, zip(at, at[1:], strict=False), strict=True):
            out[name].append((t1 - t0).total_seconds())
    return {k: median(v) for k, v in out.items() if v}


STEPS = (
    "created -> assigned",
    "assigned -> accepted",
    "accepted -> running",
    "running -> finished",
)


def run(quick: bool = False) -> dict:
    per_mode = 6 if quick else 30
    suffix = secrets.token_hex(3)
    walls: dict[str, list[float]] = {m: [] for m in MODES}
    ids: dict[str, list[str]] = {m: [] for m in MODES}
    with (
        MongoServer(NAME) as db,
        tempfile.TemporaryDirectory(prefix="seeker-bench-pull-") as tmp,
        Cluster(Path(tmp), db) as cluster,
    ):
        for mode in MODES:
            extra = ["--pull"] if mode == "pull" else []
            cluster.add_helper(f"bench-{mode}-{suffix}", "--label", f"bench={mode}", *extra)
        client = cluster.client
        seq = last_event(client)
        for mode in MODES:  # warm up: image, connections, the first poll
            _, _, seq = one_task(client, mode, seq)
        for r in range(per_mode):
            for mode in MODES if r % 2 == 0 else reversed(MODES):
                wall, task_id, seq = one_task(client, mode, seq)
                walls[mode].append(wall)
                ids[mode].append(task_id)
        phases = {m: steps(cluster, ids[m]) for m in MODES}
    return summary(walls, phases, quick)


def summary(walls: dict[str, list[float]], phases: dict, quick: bool) -> dict:
    med = {m: median(walls[m]) for m in MODES}
    p90 = {m: percentile(walls[m], 90) for m in MODES}
    r = ratio(med["pull"], med["push"])
    n = len(walls["pull"])
    rows = [
        [
            f"submit to result, median ({n} tasks each)",
            fmt_s(med["pull"]),
            fmt_s(med["push"]),
            fmt_ratio(r),
        ],
        [
            "submit to result, p90",
            fmt_s(p90["pull"]),
            fmt_s(p90["push"]),
            fmt_ratio(ratio(p90["pull"], p90["push"])),
        ],
        ["submit to result, fastest", fmt_s(min(walls["pull"])), fmt_s(min(walls["push"])), ""],
    ]
    for step in STEPS:
        pull, push = phases["pull"].get(step), phases["push"].get(step)
        if pull is not None and push is not None:
            rows.append(
                [
                    f"median step: {step}",
                    f"{1000 * pull:.0f} ms",
                    f"{1000 * push:.0f} ms",
                    fmt_ratio(ratio(pull, push)),
                ]
            )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    notes = [
        f"Seeker column: the pulling helper; baseline: the pushed one. {n} tasks each, one at "
        "a time, in alternating rounds (pull, push, push, pull, ...), after one warm-up task "
        f"each; the client looks every {1000 * EVERY:.0f} ms. Load average after: {load}.",
        "Steps: medians from the seeker's task and assignment records; 'assigned -> "
        "accepted' is the push (HTTP to the helper and its answer) or the offer (the parked "
        "poll woken and answered, then the helper's acknowledgement).",
    ]
    return report(
        NAME,
        "Pull mode: a trivial task's submit-to-result time, pulling helper vs pushed",
        rows,
        target="median on a pulling helper within 1.2x of a pushed one (issue #12)",
        met=r is not None and r <= TARGET,
        notes=notes,
        quick=quick,
        data={"walls_s": walls, "median_s": med, "p90_s": p90, "ratio": r, "steps_s": phases},
    )


if __name__ == "__main__":
    main(run, NAME)
