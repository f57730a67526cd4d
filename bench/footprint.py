"""Footprint: an idle helper's CPU and resident memory.

Seeker: a real `python -m helper start --slots 4` process, registered with a
real `seeker start` process (database in a process of its own), doing what
an idle helper does: re-registering every 15 s with fresh resources and
answering the seeker's probe every 10 s. Baselines, measured over the same
window: an idle interpreter (`python -c "import time; time.sleep(...)"`)
and a bare Flask app with one route served by cheroot (8 threads, as the
helper has), which nobody calls. psutil samples each process once a second
for 60 s (10 s quick), from 5 s after the helper registered."""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path

import requests

from bench.common import (
    MongoServer,
    Service,
    fmt_ratio,
    free_ports,
    main,
    ratio,
    report,
    wait_until,
)

NAME = "footprint"
MIB = 1024**2


def sample(procs: dict, seconds: float) -> dict:
    """CPU seconds over the window and RSS samples, per process."""
    cpu0 = {k: p.cpu_times() for k, p in procs.items()}
    rss: dict[str, list[int]] = {k: [] for k in procs}
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        for k, p in procs.items():
            rss[k].append(p.memory_info().rss)
        time.sleep(1.0)
    elapsed = time.monotonic() - t0
    out = {}
    for k, p in procs.items():
        c1, c0 = p.cpu_times(), cpu0[k]
        cpu = (c1.user - c0.user) + (c1.system - c0.system)
        out[k] = {
            "cpu_s": cpu,
            "cpu_pct": 100 * cpu / elapsed,
            "rss_mean_mib": sum(rss[k]) / len(rss[k]) / MIB,
            "rss_max_mib": max(rss[k]) / MIB,
            "uss_mib": p.memory_full_info().uss / MIB,
            "threads": p.num_threads(),
        }
    return out


def run(quick: bool = False) -> dict:
    window = 10.0 if quick else 60.0
    token = secrets.token_urlsafe(16)
    with MongoServer(NAME) as db, tempfile.TemporaryDirectory(prefix="seeker-bench-") as tmp:
        tmp = Path(tmp)
        seeker_port, helper_port, bare_port = free_ports(3)
        seeker_url = f"http://127.0.0.1:{seeker_port}"
        common = [f"--token={token}", "--log-level", "warning"]
        services = [
            Service(
                "seeker",
                [
                    "seeker",
                    "start",
                    "--port",
                    str(seeker_port),
                    "--data-dir",
                    str(tmp / "seeker"),
                    "--mongo-url",
                    db.db_url("seeker"),
                    "--channel-url",
                    "http://127.0.0.1:9",
                    *common,
                ],
                tmp,
            ),
            Service(
                "helper",
                [
                    "helper",
                    "start",
                    "--port",
                    str(helper_port),
                    "--data-dir",
                    str(tmp / "helper"),
                    "--seeker-url",
                    seeker_url,
                    "--channel-url",
                    "http://127.0.0.1:9",
                    "--name",
                    f"bench-idle-{secrets.token_hex(3)}",
                    "--slots",
                    "4",
                    *common,
                ],
                tmp,
            ),
            Service("bare-cheroot", ["bench.footprint_bare", str(bare_port)], tmp),
            Service("sleep", ["bench.footprint_sleep", str(int(window) + 120)], tmp),
        ]
        try:
            seeker, helper, bare, sleeper = services
            seeker.start().wait_healthy(seeker_url)
            helper.start()
            bare.start()
            sleeper.start()
            helper.wait_healthy(f"http://127.0.0.1:{helper_port}")
            bare.wait_healthy(f"http://127.0.0.1:{bare_port}")
            wait_until(
                lambda: requests.get(
                    f"{seeker_url}/api/v1/helpers",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=5,
                ).json()["helpers"],
                60,
                "the helper registered",
            )
            time.sleep(5)
            procs = {"helper": helper.process(), "bare": bare.process(), "sleep": sleeper.process()}
            got = sample(procs, window)
        finally:
            for s in reversed(services):
                s.stop()
    h, b, s = got["helper"], got["bare"], got["sleep"]
    rows = [
        [
            "CPU, % of one core (vs bare cheroot app)",
            f"{h['cpu_pct']:.3f}%",
            f"{b['cpu_pct']:.3f}%",
            fmt_ratio(ratio(h["cpu_pct"], b["cpu_pct"])),
        ],
        [
            "CPU, % of one core (vs sleeping interpreter)",
            f"{h['cpu_pct']:.3f}%",
            f"{s['cpu_pct']:.3f}%",
            fmt_ratio(ratio(h["cpu_pct"], s["cpu_pct"])),
        ],
        [
            "resident memory, mean (vs bare cheroot app)",
            f"{h['rss_mean_mib']:.1f} MiB",
            f"{b['rss_mean_mib']:.1f} MiB",
            fmt_ratio(ratio(h["rss_mean_mib"], b["rss_mean_mib"])),
        ],
        [
            "resident memory, mean (vs sleeping interpreter)",
            f"{h['rss_mean_mib']:.1f} MiB",
            f"{s['rss_mean_mib']:.1f} MiB",
            fmt_ratio(ratio(h["rss_mean_mib"], s["rss_mean_mib"])),
        ],
        [
            "unique memory (USS) at the end (vs bare cheroot app)",
            f"{h['uss_mib']:.1f} MiB",
            f"{b['uss_mib']:.1f} MiB",
            fmt_ratio(ratio(h["uss_mib"], b["uss_mib"])),
        ],
        ["threads (vs bare cheroot app)", str(h["threads"]), str(b["threads"]), ""],
    ]
    notes = [
        f"{window:.0f} s window, sampled once a second; CPU is user+system time over the "
        f"window. Helper RSS peaked at {h['rss_max_mib']:.1f} MiB.",
        "A ratio against a near-zero CPU baseline is large by construction: read the "
        "helper's absolute share of one core beside it.",
    ]
    return report(
        NAME,
        "Footprint: an idle helper",
        rows,
        notes=notes,
        quick=quick,
        data=got,
    )


if __name__ == "__main__":
    main(run, NAME)
