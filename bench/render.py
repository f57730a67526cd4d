"""bench/RESULTS.md from the latest result of each benchmark."""

from __future__ import annotations

from pathlib import Path

from bench import BENCHMARKS

HERE = Path(__file__).resolve().parent
FINDINGS = HERE / "findings.md"


def verdict(result: dict) -> str:
    if result.get("met") is None:
        return "no target"
    return "met" if result["met"] else "**missed**"


def section(result: dict) -> str:
    lines = [f"## {result['title']}", ""]
    quick = " (quick mode: smoke test, not a measurement)" if result.get("quick") else ""
    lines.append(f"Measured {result['date']}{quick}.")
    if result.get("target"):
        lines.append(f"Target: {result['target']} — {verdict(result)}.")
    lines += ["", "| | Seeker | baseline | ratio |", "|---|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    if result.get("notes"):
        lines.append("")
        lines += [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def document(results: dict[str, dict], machine: dict) -> str:
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
    ]
    out += [f"- {k.replace('_', ' ')}: {v}" for k, v in machine.items()]
    out += ["", "## Summary", "", "| benchmark | target | result |", "|---|---|---|"]
    for name in BENCHMARKS:
        r = results.get(name)
        if r:
            out.append(f"| {r['title']} | {r.get('target') or '—'} | {verdict(r)} |")
    out.append("")
    for name in BENCHMARKS:
        if name in results:
            out.append(section(results[name]))
    if FINDINGS.exists():
        out.append(FINDINGS.read_text())
    return "\n".join(out)
