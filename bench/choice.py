"""Choice at scale: `seeker.scheduler.select()` over 10,000 helpers.

Seeker: one `select(task, helpers)` call per decision (every filter, every
scorer, the tie-break and the sort), on HelperView/TaskView objects built
directly: the database reads and `helper_views()` that the dispatcher does
before selecting are not included.
Baseline, timed just before each decision on the same list: a plain Python
loop that applies one filter (a free slot) to every helper, the least any
choice over every helper must cost in Python.
Target: p99 under 10 ms per decision."""

from __future__ import annotations

import random
import time

from bench.common import fmt_ms, fmt_ratio, main, percentile, ratio, report
from seeker.scheduler import GpuView, HelperView, TaskView, select

NAME = "choice"
GIB = 1024**3
TARGET_P99 = 0.010
PROFILE_IN_PROCESS = True


def fleet(n: int, seed: int = 8) -> list[HelperView]:
    """A mixed fleet: a third GPU hosts, some offline, full, failing, labelled
    or restricted to some images."""
    rng = random.Random(seed)
    helpers = []
    for i in range(n):
        slots = rng.choice((1, 2, 4, 8))
        running = rng.randint(0, slots)
        cpus = float(rng.choice((8, 16, 32, 64)))
        memory = rng.choice((32, 64, 128, 256)) * GIB
        gpus: tuple[GpuView, ...] = ()
        if rng.random() < 0.3:
            size = rng.choice((16, 24, 40, 80)) * GIB
            gpus = tuple(
                GpuView(g, rng.randint(0, size), size) for g in range(rng.choice((1, 2, 4, 8)))
            )
        used = running / slots
        helpers.append(
            HelperView(
                helper_id=f"h{i:05d}",
                name=f"helper-{i:05d}",
                slots=slots,
                running=running,
                cpus_total=cpus,
                cpus_free=cpus * (1 - used),
                memory_total=memory,
                memory_free=int(memory * (1 - used)),
                gpus_free=gpus,
                gpus_total=len(gpus),
                labels={"zone": rng.choice("abc"), "tier": rng.choice(("gold", "std"))},
                online=rng.random() > 0.05,
                failures=rng.choice((0, 0, 0, 1, 2)),
                allowed_images=("registry.example.com/*",) if rng.random() < 0.1 else (),
            )
        )
    return helpers


def tasks(n: int, helper_ids: list[str], seed: int = 9) -> list[TaskView]:
    """CPU-only, GPU, constrained and binpacked tasks, some with replicas
    running or failed somewhere."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = rng.random()
        gpus = rng.choice((1, 2)) if kind < 0.3 else 0
        out.append(
            TaskView(
                task_id=f"task-{i:05d}",
                cpus=rng.choice((0, 1, 2, 4)),
                memory=rng.choice((0, 1, 4, 16)) * GIB,
                gpus=gpus,
                gpu_memory=rng.choice((0, 8, 16)) * GIB if gpus else 0,
                constraints={"zone": rng.choice("abc")} if 0.3 <= kind < 0.5 else {},
                placement="binpack" if rng.random() < 0.25 else "spread",
                running_on=frozenset(rng.sample(helper_ids, rng.choice((0, 0, 1, 3)))),
                failed_on=frozenset(rng.sample(helper_ids, rng.choice((0, 0, 1)))),
                image="seeker-demo:latest",
            )
        )
    return out


def one_filter(helpers: list[HelperView]) -> int:
    """The baseline: one filter over every helper, in a plain loop."""
    fit = 0
    for h in helpers:
        if h.running < h.slots:
            fit += 1
    return fit


def run(quick: bool = False) -> dict:
    n_helpers, n_decisions = 10_000, (30 if quick else 200)
    helpers = fleet(n_helpers)
    work = tasks(n_decisions, [h.helper_id for h in helpers])
    for t in work[:3]:  # warm up
        select(t, helpers)
    chose, base, candidates = [], [], []
    for t in work:
        t0 = time.perf_counter()
        one_filter(helpers)
        t1 = time.perf_counter()
        sel = select(t, helpers)
        t2 = time.perf_counter()
        base.append(t1 - t0)
        chose.append(t2 - t1)
        candidates.append(len(sel.candidates))
    p50, p99 = percentile(chose, 50), percentile(chose, 99)
    b50, b99 = percentile(base, 50), percentile(base, 99)
    rows = [
        ["p50 per decision", fmt_ms(p50), fmt_ms(b50), fmt_ratio(ratio(p50, b50))],
        ["p99 per decision", fmt_ms(p99), fmt_ms(b99), fmt_ratio(ratio(p99, b99))],
        ["max per decision", fmt_ms(max(chose)), fmt_ms(max(base)), ""],
    ]
    notes = [
        f"{n_decisions} decisions over {n_helpers:,} helpers; median "
        f"{percentile(candidates, 50)} candidates ranked per decision.",
        "Baseline: `for h in helpers: if h.running < h.slots: fit += 1`, timed just "
        "before each decision.",
    ]
    return report(
        NAME,
        f"Choice at scale: select() over {n_helpers:,} helpers",
        rows,
        target="p99 under 10 ms per decision",
        met=p99 < TARGET_P99,
        notes=notes,
        quick=quick,
        data={
            "helpers": n_helpers,
            "decisions": n_decisions,
            "select_p50_s": p50,
            "select_p99_s": p99,
            "select_max_s": max(chose),
            "baseline_p50_s": b50,
            "baseline_p99_s": b99,
            "ratio_p50": ratio(p50, b50),
            "ratio_p99": ratio(p99, b99),
            "candidates_median": percentile(candidates, 50),
        },
    )


def profile(seconds: float = 10.0) -> None:
    """Profile select() over the same fleet (for `python -m bench --profile choice`)."""
    helpers = fleet(10_000)
    work = tasks(200, [h.helper_id for h in helpers])
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        select(work[i % len(work)], helpers)
        i += 1


if __name__ == "__main__":
    main(run, NAME)
