"""Where a service process's CPU goes, by thread: each living thread's CPU
from /proc, grouped by the thread's name. /proc's per-thread `schedstat`
counts nanoseconds; its `stat` counts ticks of 10 ms, too coarse for the
simulated fleet's 200 helpers' threads, each of which runs a few ms in a
run. Python 3.11 gives the system no thread names, so the names come from
`py-spy dump` (a bench extra, setup.cfg); without it there is no split.

A sampling profile shows what code runs; this shows which thread pays,
including the time the kernel spends for it (system calls, waits handed
over), which a profile that samples the thread holding the GIL leaves out
(bench/findings.md 40)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

# py-spy dump's header of each thread: `Thread 12345 (idle): "name"`
HEADER = re.compile(r'^Thread (\d+) \([^)]*\): "([^"]*)"', re.M)
ENDED = "(threads that ended, or not named)"


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each living thread of `pid`, by its native id ({}
    where /proc does not tell)."""
    cpu = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            cpu[int(stat.parent.name)] = int(stat.read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):  # the thread ended meanwhile
            continue
    return cpu


def py_spy_exe() -> str | None:
    """py-spy beside this interpreter (the virtual environment's), else on
    the PATH; None without it."""
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def thread_names(pid: int) -> dict[int, str]:
    """The name of each Python thread of `pid`, by native id, as py-spy
    reads it ({} without py-spy, or when it cannot read the process)."""
    exe = py_spy_exe()
    if exe is None:
        return {}
    try:
        dump = subprocess.run(
            [exe, "dump", "--pid", str(pid), "--nonblocking"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {int(tid): name for tid, name in HEADER.findall(dump.stdout)}


def kind(name: str) -> str:
    """A thread's name without what tells threads of one kind apart (their
    numbers): `CP Server Thread-12` is a `CP Server Thread-N`."""
    return re.sub(r"\d+", "N", name)


def by_thread(
    before: dict[int, float], after: dict[int, float], names: dict[int, str], total: float
) -> dict[str, float]:
    """CPU seconds between two `thread_cpu` readings, by kind of thread,
    largest first; what `total` (the process's CPU over the same time) has
    beyond the named threads goes to ENDED. {} without names."""
    if not names:
        return {}
    kinds: dict[str, float] = {}
    for tid, cpu in after.items():
        if tid in names:
            k = kind(names[tid])
            kinds[k] = kinds.get(k, 0.0) + cpu - before.get(tid, 0.0)
    rest = total - sum(kinds.values())
    if rest > 0:
        kinds[ENDED] = rest
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def split_line(service: str, kinds: dict[str, float], tasks: int, shown: int = 6) -> str:
    """`seeker: CP Server Thread-N 3.90, dispatch 1.70, ... ms`: the CPU per
    task of the largest `shown` kinds of at least 0.005 ms, the rest summed."""
    items = [(k, 1000 * v / tasks) for k, v in kinds.items()]
    head = [(k, ms) for k, ms in items[:shown] if ms >= 0.005]
    rest = sum(ms for _, ms in items[len(head) :])
    parts = [f"{k} {ms:.2f}" for k, ms in head]
    if rest >= 0.005:
        parts.append(f"{len(items) - len(head)} other kinds {rest:.2f}")
    return f"{service}: " + ", ".join(parts) + " ms"
