"""Seeker's benchmarks. Each one measures Seeker and a baseline side by side
in the same run and reports the ratio: this machine is shared and noisy, so
an absolute figure on its own means little.

Run them all with `python -m bench` (or name some: `python -m bench choice
results`; `--quick` for a smoke test under a minute each). Each module also
runs alone: `python -m bench.choice --quick`."""

BENCHMARKS = (
    "overhead",
    "dispatch",
    "choice",
    "results",
    "footprint",
    "pull",
    "failover",
    "idle",
    "join",
    "scale",
    "backlog",
    "history",
)
