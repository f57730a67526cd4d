"""bench/RESULTS.md from the latest result of each benchmark."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from bench import BENCHMARKS

HERE = Path(__file__).resolve().parent
FINDINGS = HERE / "findings.md"


def verdict(result: dict) -> str:
    if result.get("met") is None:
        return "no target"
    return "met" if result["met"] else "**missed**"


def section(result: dict, machine: dict | None = None) -> str:
    """A benchmark's section; `machine`: the one it ran on, when it is not
    the one the document's header names."""
    lines = [f"## {result['title']}", ""]
    quick = " (quick mode: smoke test, not a measurement)" if result.get("quick") else ""
    lines.append(f"Measured {result['date']}{quick}.")
    if machine:
        lines.append(
            "Machine: " + "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in machine.items()) + "."
        )
    if result.get("target"):
        lines.append(f"Target: {result['target']} — {verdict(result)}.")
    lines += ["", "| | Seeker | baseline | ratio |", "|---|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    if result.get("notes"):
        lines.append("")
        lines += [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def machines(results: dict[str, dict], fallback: dict) -> tuple[dict, dict[str, dict]]:
    """The machine most sections were measured on, and each section's (a
    result recorded before results named their machine: `fallback`)."""
    each = {name: r.get("machine") or fallback for name, r in results.items()}
    counts = Counter(json.dumps(m, sort_keys=True) for m in each.values())
    if not counts:
        return fallback, each
    most = counts.most_common(1)[0][0]
    return next(m for m in each.values() if json.dumps(m, sort_keys=True) == most), each


def document(results: dict[str, dict], machine: dict) -> str:
    common, each = machines(results, machine)
    out = [
        "# Seeker benchmarks",
        "",
        "Written by `python -m bench` (`make bench`). Every figure is measured beside a "
        "baseline in the same run, and the ratio is the figure to read: the machine is "
        "shared and noisy. What each benchmark includes and leaves out is in its module's "
        "docstring (`bench/*.py`) and in the notes under its table.",
        "",
        "## Machine",
        "",
        "Every section was measured on this machine, unless it names another.",
        "",
    ]
    out += [f"- {k.replace('_', ' ')}: {v}" for k, v in common.items()]
    out += ["", "## Summary", "", "| benchmark | target | result |", "|---|---|---|"]
    for name in BENCHMARKS:
        r = results.get(name)
        if r:
            out.append(f"| {r['title']} | {r.get('target') or '—'} | {verdict(r)} |")
    out.append("")
    for name in BENCHMARKS:
        if name in results:
            own = each[name] if each[name] != common else None
            out.append(section(results[name], own))
    if FINDINGS.exists():
        out.append(FINDINGS.read_text())
    return "\n".join(out)
