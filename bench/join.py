"""Joining: 1,000 tasks waiting on an empty fleet, then 200 helpers joining
at once.

Seeker: a database in its own process (SecantusDB, or TEST_MONGO_URL),
`channel start`, `seeker start` and `python -m bench.fleet` (bench/fleet.py:
pushed helpers of 4 slots whose containers finish at once), as in the
dispatch benchmark, but the fleet starts only once the tasks (`true`) have
been submitted through the REST API by 8 client threads; its 200 helpers
then register at once (32 registrations at a time). The clock runs from the
fleet's start until the seeker's database shows every task succeeded; "all
placed" is the last assignment's `assigned_at` (the seeker's clock, the same
machine's) after the fleet's start. Then every task must have exactly one
assignment in the seeker's database and one result in the channel's: none
placed twice, none lost. Then the same with pulling helpers (`--pull`):
tasks first, then 200 pulling helpers joining.

Baseline: the same number of tasks submitted the same way to the same 200
helpers already registered, on a fresh database server, from the first
submit until every task succeeded (submitting overlaps running here, so
the time to submit is shown apart for both).

Size: 1,000 tasks and 200 helpers (100 and 20 quick). No target of its own
(issue #14 asks for every task placed, none twice, and the time beside the
baseline's)."""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.common import MongoServer, fmt_ratio, fmt_s, main, ratio, report
from bench.deployment import Deployment
from seeker.models import AssignmentState, TaskState
from seeker.placement.capacity import as_utc

NAME = "join"


def placement_counts(dep: Deployment) -> dict:
    """Assignments and results per task: how many tasks have other than one."""
    per_task = list(
        dep.seeker_db["assignments"].aggregate([{"$group": {"_id": "$task_id", "n": {"$sum": 1}}}])
    )
    finished = list(
        dep.seeker_db["assignments"].aggregate(
            [
                {"$match": {"state": AssignmentState.FINISHED}},
                {"$group": {"_id": "$task_id", "n": {"$sum": 1}}},
            ]
        )
    )
    results = list(
        dep.channel_db["results"].aggregate([{"$group": {"_id": "$task_id", "n": {"$sum": 1}}}])
    )
    return {
        "tasks": dep.seeker_db["tasks"].count_documents({}),
        "assignments": sum(a["n"] for a in per_task),
        "tasks_assigned_twice": sum(1 for a in per_task if a["n"] > 1),
        "tasks_run_twice": sum(1 for a in finished if a["n"] > 1),
        "results": sum(r["n"] for r in results),
        "tasks_with_two_results": sum(1 for r in results if r["n"] > 1),
        "assignment_states": {
            s["_id"]: s["n"]
            for s in dep.seeker_db["assignments"].aggregate(
                [{"$group": {"_id": "$state", "n": {"$sum": 1}}}]
            )
        },
    }


def last_assigned(dep: Deployment) -> datetime:
    latest = dep.seeker_db["assignments"].find_one({}, sort=[("assigned_at", -1)])
    return as_utc(latest["assigned_at"])


def joining(n: int, helpers: int, pull: bool = False) -> dict:
    """Tasks first, then the fleet."""
    with (
        MongoServer(NAME) as db,
        tempfile.TemporaryDirectory(prefix="seeker-bench-join-") as tmp,
        Deployment(Path(tmp), db, helpers, pull=pull, join_now=False) as dep,
    ):
        t0 = time.perf_counter()
        dep.submit(n)
        submitted = time.perf_counter() - t0
        started_at = datetime.now(timezone.utc)
        t1 = time.perf_counter()
        joined = dep.join()
        dep.wait_until_succeeded(n, timeout=max(600, n))
        done = time.perf_counter() - t1
        placed = (last_assigned(dep) - started_at).total_seconds()
        return {
            "submit_s": submitted,
            "joined_s": joined,
            "placed_s": placed,
            "done_s": done,
            **placement_counts(dep),
        }


def standing(n: int, helpers: int) -> dict:
    """The baseline: the fleet first, then the tasks."""
    with (
        MongoServer(NAME) as db,
        tempfile.TemporaryDirectory(prefix="seeker-bench-join-") as tmp,
        Deployment(Path(tmp), db, helpers) as dep,
    ):
        started_at = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        dep.submit(n)
        submitted = time.perf_counter() - t0
        dep.wait_until_succeeded(n, timeout=max(600, n))
        done = time.perf_counter() - t0
        placed = (last_assigned(dep) - started_at).total_seconds()
        return {"submit_s": submitted, "placed_s": placed, "done_s": done, **placement_counts(dep)}


def run(quick: bool = False) -> dict:
    n, helpers = (100, 20) if quick else (1_000, 200)
    join = joining(n, helpers)
    print(f"join: tasks first, then the fleet: {join}", flush=True)
    base = standing(n, helpers)
    print(f"join: the fleet first: {base}", flush=True)
    pulled = joining(n, helpers, pull=True)
    print(f"join: tasks first, then a pulling fleet: {pulled}", flush=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    twice = sum(r["tasks_run_twice"] + r["tasks_with_two_results"] for r in (join, pulled))
    rows = [
        [
            f"{n:,} tasks done (fleet's start or first submit -> all succeeded)",
            fmt_s(join["done_s"]),
            fmt_s(base["done_s"]),
            fmt_ratio(ratio(join["done_s"], base["done_s"])),
        ],
        [
            "all placed (-> the last assignment)",
            fmt_s(join["placed_s"]),
            fmt_s(base["placed_s"]),
            fmt_ratio(ratio(join["placed_s"], base["placed_s"])),
        ],
        [f"{helpers} helpers registered", fmt_s(join["joined_s"]), "before", ""],
        [f"submitting the {n:,} tasks", fmt_s(join["submit_s"]), fmt_s(base["submit_s"]), ""],
    ]
    for what, key in (
        ("assignments", "assignments"),
        ("tasks assigned more than once", "tasks_assigned_twice"),
        ("tasks run more than once (finished assignments)", "tasks_run_twice"),
        ("results in the channel", "results"),
        ("tasks with more than one result", "tasks_with_two_results"),
    ):
        rows.append([what, f"{join[key]:,}", f"{base[key]:,}", ""])
    rows += [
        [
            "pulling helpers joining (vs pushed helpers joining): all succeeded",
            fmt_s(pulled["done_s"]),
            fmt_s(join["done_s"]),
            fmt_ratio(ratio(pulled["done_s"], join["done_s"])),
        ],
        [
            "pulling helpers joining: assignments, tasks run twice, results, two results",
            ", ".join(
                f"{pulled[k]:,}"
                for k in ("assignments", "tasks_run_twice", "results", "tasks_with_two_results")
            ),
            "",
            "",
        ],
    ]
    notes = [
        f"Seeker column: {n:,} tasks submitted to an empty fleet, then {helpers} pushed "
        "helpers of 4 slots joining at once (32 registrations at a time); baseline: the same "
        "tasks submitted to the same fleet already registered, on a fresh database server. "
        f"Load average after: {load}.",
        f"Last rows: the same {n:,} tasks, then {helpers} pulling helpers joining (each "
        "long-polls for its work; bench/fleet.py --pull), on a fresh database server.",
        "Assignment states at the end: "
        f"joining {join['assignment_states']}, baseline {base['assignment_states']}, "
        f"pulling helpers joining {pulled['assignment_states']}.",
    ]
    return report(
        NAME,
        f"Joining: {n:,} tasks waiting, then {helpers} helpers joining at once",
        rows,
        target="every task placed once, none twice (issue #14)",
        met=twice == 0 and join["results"] == n and pulled["results"] == n,
        notes=notes,
        quick=quick,
        data={"joining": join, "baseline": base, "joining_pull": pulled},
    )


def profile() -> str:
    """Sample the seeker and the database (the GIL's holder) for 30 s while
    1,000 tasks submitted at once run on 200 helpers already there."""
    from bench.profiling import PROFILES, py_spy, summarize

    with (
        MongoServer(NAME) as db,
        tempfile.TemporaryDirectory(prefix="seeker-bench-join-") as tmp,
        Deployment(Path(tmp), db, 200) as dep,
    ):
        dep.submit(1_000)
        raws = {k: PROFILES / f"join-{k}.raw" for k in ("seeker", "database")}
        spies = [
            py_spy(dep.seeker.proc.pid, 30, raws["seeker"]),
            py_spy(db.proc.pid, 30, raws["database"]),
        ]
        for spy in spies:
            spy.wait()
        done = dep.seeker_db["tasks"].count_documents({"state": TaskState.SUCCEEDED})
    out = [f"1,000 tasks submitted at once to 200 helpers; {done} succeeded after 30 s\n"]
    out += [f"=== {k}\n{summarize(raw)}" for k, raw in raws.items()]
    return "\n".join(out)


if __name__ == "__main__":
    main(run, NAME)
