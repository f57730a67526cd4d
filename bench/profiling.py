"""Where the time goes: pyinstrument for what runs in this process, py-spy
for a service process; both summarised as the project's own lines
(file:line) ranked by the share of samples in which they are on the stack.

Used by `python -m bench --profile NAME`; output in bench/profiles/NAME.txt.
Needs `pip install pyinstrument py-spy` into the virtualenv."""

from __future__ import annotations

import importlib
import re
import subprocess
from collections import Counter
from pathlib import Path

from bench.common import ROOT
from bench.render import HERE
from bench.threads import py_spy_exe

OURS = ("seeker/", "helper/", "channel/", "serving/")
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")
PROFILES = HERE / "profiles"


def profile(name: str) -> str:
    module = importlib.import_module(f"bench.{name}")
    if not hasattr(module, "profile"):
        return f"{name}: no profiling scenario"
    PROFILES.mkdir(exist_ok=True)
    out = PROFILES / f"{name}.txt"
    if getattr(module, "PROFILE_IN_PROCESS", False):
        text = in_process(module.profile)
    else:  # the scenario samples its service processes itself
        text = module.profile()
    out.write_text(text)
    for raw in PROFILES.glob("*.raw"):  # summarised above; too big to keep
        raw.unlink()
    return f"{name}: wrote {out.relative_to(ROOT)}\n{text[:6000]}"


def in_process(fn) -> str:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    fn()
    profiler.stop()
    return profiler.output_text(unicode=False, color=False, show_all=False)


def py_spy(pid: int, seconds: float, raw: Path, gil: bool = True) -> subprocess.Popen:
    """Start sampling process `pid` for `seconds`: the thread holding the GIL
    at each sample, i.e. where the process spends its Python CPU; with
    `gil=False`, every thread, waiting or not (where its threads wait)."""
    exe = py_spy_exe() or "py-spy"
    which = ["--gil"] if gil else ["--idle"]
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--nonblocking",
            *which,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize(
    raw: Path,
    top: int = 25,
    idle=("wait", "select", "poll", "_wait_for_tstate_lock", "acquire", "sleep", "accept"),
    sampled: str = "the GIL-holding thread",
) -> str:
    """Rank frames from py-spy's raw (collapsed) stacks. Samples whose
    innermost frame is a wait, a select or a lock are left out, so the
    shares are of the samples in which the process was working."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [FRAME.match(f.strip()) for f in stack.split(";")]
        frames = [f for f in frames if f]
        if not frames or frames[-1]["func"] in idle:
            continue
        n = int(count)
        busy += n
        ours = [
            f"{_short(f['file'])}:{f['line']} {f['func']}"
            for f in frames
            if _short(f["file"]).startswith(OURS)
        ]
        for key in set(ours):
            inclusive[key] += n
        leaf = frames[-1]
        own[f"{_short(leaf['file'])}:{leaf['line']} {leaf['func']}"] += n
    lines = [
        f"{busy} busy samples of {sampled} (waits left out)",
        "",
        "project lines on the stack (inclusive share of busy samples):",
    ]
    lines += [f"  {100 * n / busy:5.1f}%  {k}" for k, n in inclusive.most_common(top)]
    lines += ["", "innermost frames (self share of busy samples, any library):"]
    lines += [f"  {100 * n / busy:5.1f}%  {k}" for k, n in own.most_common(top)]
    return "\n".join(lines) + "\n"


def _short(path: str) -> str:
    for marker in ("/site-packages/", str(ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path
