"""Plain-text tables and summaries for the CLI."""

from __future__ import annotations


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(headers)] + [line(r) for r in cells])


def size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def when(ts: str | None) -> str:
    return ts.replace("T", " ")[:19] if ts else "-"


def running_of(helper: dict) -> str:
    """Its live assignments of its slots, e.g. `3/4`; with `--prefetch 2`,
    `5/4+2`: five live, one of them waiting in its queue."""
    prefetch = helper.get("prefetch") or 0
    return f"{helper.get('running', 0)}/{helper['slots']}" + (f"+{prefetch}" if prefetch else "")


def helpers_table(helpers: list[dict]) -> str:
    """One line per helper and, under it, one per GPU (model, CUDA version
    and compute capability, how much of it assignments hold, memory used of
    total, utilisation) and one per MIG instance of a GPU with MIG on."""
    if not helpers:
        return "no helpers registered"
    rows = []
    for h in helpers:
        res = h.get("resources") or {}
        gpus = res.get("gpus") or []
        state = "online" if h.get("online", True) else "offline"
        rows.append(
            [
                h["name"],
                state,
                h.get("mode") or "push",
                h.get("url") or "-",
                running_of(h),
                res.get("cpus"),
                _load(res),
                f"{size(res.get('memory_available'))}/{size(res.get('memory_total'))}",
                len(gpus) or "-",
                h.get("failures", 0),
                when(h.get("last_seen")),
            ]
        )
        use = {u.get("uuid") or f"#{u['index']}": u for u in h.get("gpu_use") or []}
        for g in gpus:
            rows += _gpu_rows(g, use)
    return table(
        [
            "NAME",
            "STATE",
            "MODE",
            "URL",
            "RUNNING",
            "CPUS",
            "LOAD",
            "MEMORY FREE/TOTAL",
            "GPUS",
            "FAILURES",
            "LAST SEEN",
        ],
        rows,
    )


def _gpu_rows(g: dict, use: dict[str, dict]) -> list[list]:
    """A GPU's line: `  gpu 0  NVIDIA H100  CUDA 12.4, cc 9.0  0.5 taken ...`;
    with MIG on, one more line per instance, which is what tasks are given."""
    versions = [f"CUDA {g['cuda_version']}"] if g.get("cuda_version") else []
    versions += [f"cc {g['compute_capability']}"] if g.get("compute_capability") else []
    util = g.get("utilization")
    instances = g.get("mig") or []
    rows = [
        [
            f"  gpu {g['index']}",
            g.get("name") or "",
            "",
            ", ".join(versions),
            "MIG" if instances else _taken(use.get(g.get("uuid") or f"#{g['index']}")),
            "",
            "",
            _gpu_memory(g),
            f"{util:.0f}% busy" if util is not None else "",
            "",
            "",
        ]
    ]
    for m in instances:
        taken = _taken(use.get(m.get("uuid") or ""))
        name = "    mig " + (m.get("profile") or "?")
        rows.append([name, m.get("uuid") or "", "", "", taken, "", "", _gpu_memory(m), "", "", ""])
    return rows


def _taken(use: dict | None) -> str:
    """'free', 'taken' (whole) or '0.5 taken' (shares)."""
    taken = (use or {}).get("taken", 0)
    if not taken:
        return "free"
    return "taken" if taken >= 1 else f"{taken:g} taken"


def _gpu_memory(g: dict) -> str:
    total = g.get("memory_total") or 0
    free = g.get("memory_free")
    used = total - (total if free is None else free)
    return f"{size(used)} used/{size(total)}"


def _load(res: dict) -> str:
    load = res.get("cpu_load")
    return f"{load:.2f}" if load is not None else "-"


def tasks_table(tasks: list[dict]) -> str:
    if not tasks:
        return "no tasks"
    rows = [
        [
            t["task_id"] + (f" [{t['array_index']}]" if t.get("array_index") is not None else ""),
            t["state"],
            t["image"],
            " ".join(t.get("command") or [])[:40],
            when(t.get("created_at")),
            t.get("error") or t.get("wait_reason") or "",
        ]
        for t in tasks
    ]
    return table(["TASK", "STATE", "IMAGE", "COMMAND", "CREATED", "NOTE"], rows)


def task_summary(t: dict) -> str:
    lines = [
        f"task      {t['task_id']}",
        f"state     {t['state']}",
        f"image     {t['image']}",
        f"command   {' '.join(t.get('command') or []) or '-'}",
    ]
    if t.get("replicas", 1) > 1:
        policy = t.get("policy") or {}
        kind = policy.get("kind", "first")
        if kind == "quorum":
            kind += f" {policy.get('quorum')} (at most {policy.get('max_replicas')} replicas)"
        lines.append(f"replicas  {t['replicas']}, policy {kind}")
    lines += workflow_lines(t)
    if len(t.get("votes") or []) > 1:
        votes = "; ".join(
            f"{(v['output_digest'] or '')[7:19] or '-'}: {', '.join(v['helpers'])}"
            for v in t["votes"]
        )
        lines.append(f"disagree  {votes}")
    if t.get("wait_reason"):
        lines.append(f"waiting   {t['wait_reason']}")
    if t.get("error"):
        lines.append(f"error     {t['error']}")
    if t.get("result"):
        r = t["result"]
        lines.append(
            f"result    {r.get('status')}{_exit(r)} from "
            f"{r.get('helper_name')}, attempt {r.get('attempt')}"
        )
    if t.get("assignments"):
        rows = [
            [
                a["attempt"],
                a.get("helper_name"),
                a["state"],
                a.get("status") or "",
                a.get("exit_code") if a.get("exit_code") is not None else "",
                (a.get("output_digest") or "")[7:19],
                when(a.get("started_at")),
                when(a.get("finished_at")),
                a.get("error") or "",
            ]
            for a in t["assignments"]
        ]
        lines += [
            "",
            table(
                [
                    "ATTEMPT",
                    "HELPER",
                    "STATE",
                    "STATUS",
                    "EXIT",
                    "DIGEST",
                    "STARTED",
                    "FINISHED",
                    "NOTE",
                ],
                rows,
            ),
        ]
    return "\n".join(lines)


def workflow_lines(t: dict) -> list[str]:
    """The lines of a task's summary about its array, what it runs after and its inputs."""
    lines = []
    if t.get("array_id"):
        lines.append(f"array     {t['array_id']}, index {t.get('array_index')}")
    if t.get("after"):
        lines.append(f"after     {', '.join(t['after'])}")
    for i, inp in enumerate(t.get("inputs") or []):
        lines.append(f"{'inputs' if i == 0 else '':<10}{input_line(inp)}")
    return lines


def input_line(inp: dict) -> str:
    """e.g. '/input/w.bin <- sha256:5e2bf57d3f40 (weights.bin, 6B)'"""
    if inp.get("output_of"):
        return f"{inp['path']} <- /output of task {inp['output_of']}"
    source = inp["artifact_id"][:19]
    unpacked = ", unpacked" if inp.get("unpack") else ""
    return f"{inp['path']} <- {source} ({inp.get('name')}, {size(inp.get('size'))}{unpacked})"


def results_table(results: list[dict], logs: bool = False) -> str:
    if not results:
        return "no results yet"
    rows = [
        [
            "*" if r.get("canonical") else "",
            r["helper_name"] or r["helper_id"][:12],
            r["attempt"],
            r["status"],
            r.get("exit_code"),
            r["output_digest"][7:19],
            when(r.get("finished_at")),
            r.get("error") or "",
        ]
        for r in results
    ]
    out = [table(["", "HELPER", "ATTEMPT", "STATUS", "EXIT", "DIGEST", "FINISHED", "NOTE"], rows)]
    if logs:
        for r in results:
            for stream in ("stdout", "stderr"):
                if r.get(stream):
                    cut = " (truncated)" if r.get(f"{stream}_truncated") else ""
                    out.append(
                        f"\n--- {stream} of {r['helper_name']} attempt {r['attempt']}{cut}\n"
                        + r[stream].rstrip("\n")
                    )
    return "\n".join(out)


def _exit(r: dict) -> str:
    return f" (exit {r['exit_code']})" if r.get("exit_code") is not None else ""


def event_line(e: dict) -> str:
    """One event: its number, time, kind, and what it is about."""
    head = f"{e['seq']:>6}  {when(e.get('at'))}  {e['type']:<15}"
    if e.get("task_id"):
        what = f"task {e['task_id']}"
        if e.get("name"):
            what += f" ({e['name']})"
        result = e.get("result") or {}
        if result.get("helper_name"):
            what += f" on {result['helper_name']}, exit {result.get('exit_code')}"
        if e.get("error"):
            what += f": {e['error']}"
        return f"{head}  {what}"
    what = f"helper {e.get('helper_name') or e.get('helper_id')}"
    if e.get("reason"):
        what += f" after {e.get('failures')} failed contacts ({e['reason']})"
    return f"{head}  {what}"


def events_text(page: dict) -> str:
    """A page of the event log, and how to ask for the next."""
    if not page["events"]:
        return "no events"
    lines = [event_line(e) for e in page["events"]]
    return "\n".join([*lines, f"(next page: --after {page['next']})"])
