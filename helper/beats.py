"""What a helper's heartbeats carry and when they go: the shape of a
registration that makes a full one worth sending, the light beats' fields,
when the next beat is due, and when a busy helper may leave one out."""

from __future__ import annotations

import copy
import random

# a full registration at least this often, with the passing load (CPU load,
# memory available, GPU use) the light heartbeats leave out
REFRESH_BEATS = 60  # heartbeats: every 15 minutes at 15 s, 100 at 100 s
VOLATILE = ("cpu_load", "memory_available", "disk_free")
LIGHT = ("running", "heartbeat")  # what a light heartbeat carries too
# a pushed helper whose reports keep reaching the seeker leaves out its
# light heartbeats, but beats at least every QUIET_BEATS intervals; a wait
# shorter than MIN_QUIET seconds is not worth it (it beats at once)
QUIET_BEATS = 4
MIN_QUIET = 1.0
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


def quiet_left(
    now: float, every: float, heard_at: float | None, beat_at: float | None
) -> float | None:
    """Seconds a pushed helper's light heartbeat may still wait because the
    seeker heard from it otherwise (a report of a run counts there as a
    contact, as a beat does), or None when the beat is due now. The seeker
    then hears from it at least every `every` seconds, as beats alone would
    make it (liveness and the prober expect no more); but a light beat goes
    at least every QUIET_BEATS intervals, since its answer is how runs the
    seeker no longer wants are stopped. Times in seconds on one clock."""
    if heard_at is None or beat_at is None:
        return None
    # (never more than `every`: a clock set back does not stretch it)
    left = min(every, every - (now - heard_at), QUIET_BEATS * every - (now - beat_at))
    return left if left >= MIN_QUIET else None
