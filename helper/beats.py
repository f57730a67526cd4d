"""What a helper's heartbeats carry and when they go: the shape of a
registration that makes a full one worth sending, the light beats' fields,
and when the next beat is due."""

from __future__ import annotations

import copy
import random

# a full registration at least this often, with the passing load (CPU load,
# memory available, GPU use) the light heartbeats leave out
REFRESH_BEATS = 60  # heartbeats: every 15 minutes at 15 s, 100 at 100 s
VOLATILE = ("cpu_load", "memory_available", "disk_free")
LIGHT = ("running", "heartbeat")  # what a light heartbeat carries too
GiB = 1024**3


def next_beat_in(before: float | None, every: float, draw=random.uniform) -> float:
    """Seconds to the next heartbeat: `every`; but right after the seeker
    asked for a longer interval than `before` (its fleet grew), a random
    point between the two. Helpers that joined at once, then were all told
    at once to beat less often, would otherwise beat in one burst per
    interval for ever; this spreads them in one step and makes no beat
    later than asked (Nomad staggers its heartbeats too)."""
    if before is not None and every > before:
        return draw(before, every)
    return every


def shape_of(registration: dict) -> dict:
    """What a registration says but what the helper runs and its passing
    load (GPU memory free counted in whole GiB, so that a change the
    scheduler would care about is sent)."""
    shape = copy.deepcopy({k: v for k, v in registration.items() if k not in LIGHT})
    res = {k: v for k, v in (shape.get("resources") or {}).items() if k not in VOLATILE}
    res["gpus"] = [
        {
            **{k: v for k, v in g.items() if k != "utilization"},
            "memory_free": g.get("memory_free", 0) // GiB,
        }
        for g in res.get("gpus") or []
    ]
    shape["resources"] = res
    return shape
