"""The GPUs a helper's runs hold, as the helper itself counts them: an
assignment that names a GPU its runs already fill is refused as busy (429),
whichever seeker placed it.

One seeker never places that (its placement sees its own assignments). Two
seekers placing on one helper at the same moment can: each reads the live
assignments before the other's is written, and both pick the same free GPU
(the slots' unique index keeps them to the helper's slots, not to its
GPUs). The seeker whose push or offer is refused places that replica again,
and then sees both.

A run's container carries its devices in a label (`as_label`), so that a
restarted helper counts the GPUs of the runs it adopts (`from_label`)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable

from helper.models import Assignment
from seeker.placement.gpus import EPS, is_share  # the seeker's own rule for shares

log = logging.getLogger(__name__)


def devices_of(a: Assignment) -> dict[str, float]:
    """Device (uuid, else index) -> the share of it the assignment holds:
    all of each of its GPUs, or its share of its one GPU."""
    keys = list(a.gpu_uuids) or [str(i) for i in a.gpu_indices]
    gpus = a.resources.gpus
    share = float(gpus) if is_share(gpus) else 1.0
    return {k: share for k in keys}


def overbooked(held: Iterable[dict[str, float]], wanted: dict[str, float]) -> str | None:
    """The first device of `wanted` that the runs' `held` devices leave too
    little of; None when it fits."""
    taken: dict[str, float] = {}
    for devices in held:
        for key, share in devices.items():
            taken[key] = taken.get(key, 0.0) + share
    for key, share in wanted.items():
        if taken.get(key, 0.0) + share > 1.0 + EPS:
            return key
    return None


def as_label(devices: dict[str, float]) -> str:
    return json.dumps(devices, sort_keys=True)


def from_label(value: str | None, container: str = "") -> dict[str, float]:
    """The devices a container's label says its run holds; {} for none,
    and for a label that is not what `as_label` writes (logged)."""
    if not value:
        return {}
    try:
        devices = json.loads(value)
    except ValueError:
        devices = None
    if not isinstance(devices, dict) or not all(
        isinstance(k, str)
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
        and 0 < v <= 1
        for k, v in devices.items()
    ):
        log.warning("container %s: its GPU label %r is not a helper's", container, value)
        return {}
    return {k: float(v) for k, v in devices.items()}
