"""How `bench idle` shows what it measured (bench/idle.py): a table's rows
for each fleet size, each mode beside its baseline, and the notes under it."""

from __future__ import annotations

from bench.common import fmt_ratio, ratio


def cell(g: dict, key: str, fmt: str = "{:.1f}", scale: float = 1) -> str:
    return fmt.format(scale * g[key]) if key in g else "failed"


def both(a: dict, b: dict, key: str) -> str:
    return fmt_ratio(ratio(a[key], b[key])) if key in a and key in b else ""


def rows_for(n: int, m: dict) -> list[list]:
    push, pull, bare = m["push"], m["pull"], m["bare"]
    rows = []
    for what, key, fmt in (
        ("seeker CPU, % of one core", "cpu_pct", "{:.1f}%"),
        ("database operations per second", "db_ops_per_s", "{:.1f}"),
        ("seeker resident memory", "rss_mib", "{:.0f} MiB"),
    ):
        on_bare = key in bare or "error" in bare
        rows.append(
            [
                f"{n:,} pushed helpers: {what} (vs bare server)",
                cell(push, key, fmt),
                cell(bare, key, fmt) if on_bare else "—",
                both(push, bare, key),
            ]
        )
        rows.append(
            [
                f"{n:,} pulling helpers: {what} (vs push mode)",
                cell(pull, key, fmt),
                cell(push, key, fmt),
                both(pull, push, key),
            ]
        )
    board = push.get("dashboard")
    if board is not None:
        idle_db = push["others_cpu_pct"].get("database")
        rows.append(
            [
                f"{n:,} pushed helpers, one dashboard open: seeker CPU (vs none)",
                f"{board['seeker_cpu_pct']:.1f}%",
                f"{push['cpu_pct']:.1f}%",
                fmt_ratio(ratio(board["seeker_cpu_pct"], push["cpu_pct"])),
            ]
        )
        rows.append(
            [
                f"{n:,} pushed helpers, one dashboard open: database CPU (vs none)",
                f"{board['database_cpu_pct']:.1f}%",
                "" if idle_db is None else f"{idle_db:.1f}%",
                "" if idle_db is None else fmt_ratio(ratio(board["database_cpu_pct"], idle_db)),
            ]
        )
    for what, key, fmt, scale in (
        ("heartbeats answered, % of the fleet's rate", "beat_rate", "{:.0f}%", 100),
        ("seeker threads", "threads", "{}", 1),
        ("seeker open descriptors", "fds", "{:,}", 1),
    ):
        rows.append(
            [
                f"{n:,} helpers: {what}, push / pull" + (" (vs bare server)" if scale == 1 else ""),
                f"{cell(push, key, fmt, scale)} / {cell(pull, key, fmt, scale)}",
                cell(bare, key, fmt) if scale == 1 else "",
                "",
            ]
        )
    return rows


def side_note(mode: str, g: dict) -> str:
    if "error" in g:
        return f"{mode}: failed: {g['error']}"
    f = g["fleet"]
    others = ", ".join(f"{k} {v:.0f}%" for k, v in g["others_cpu_pct"].items())
    text = (
        f"{mode}: joined in {g['join_s']:.0f} s; over {g['window_s']:.0f} s the fleet beat at "
        f"{100 * g['beat_rate']:.0f}% of its rate ({f.get('registrations', 0):.0f} "
        f"registrations, {f.get('registration_failures', 0):.0f} failed, "
        f"{f.get('beats_due_late', 0):.0f} over 1 s late, the latest "
        f"{f.get('late_s_max', 0):.1f} s late)"
    )
    if mode == "pull":
        text += (
            f", {f.get('polls', 0):.0f} polls answered, "
            f"{f.get('poll_failures', 0):.0f} failed, {f.get('polling', 0):.0f} waiting "
            "at the end"
        )
    ops = ", ".join(f"{k} {v / g['window_s']:.1f}/s" for k, v in g["db_ops"].items() if v)
    return f"{text}; database operations: {ops or 'none'}; CPU of the others: {others}"


def notes_for(n: int, m: dict) -> str:
    parts = [side_note(mode, m[mode]) for mode in ("push", "pull")]
    if "error" in m["bare"]:
        parts.append(side_note("bare server", m["bare"]))
    load = ", ".join(f"{x:.1f}" for x in m["load"])
    return f"{n:,} helpers (load average {load} after): " + ". ".join(parts) + "."
