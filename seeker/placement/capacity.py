"""What each helper has free right now: its report, less what live
assignments have reserved on it (so two pushes between two reports never
oversubscribe a helper)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from seeker.placement.fleet import Fleet
from seeker.placement.gpus import after_reservations, devices_of
from seeker.placement.views import HelperView


def helper_views(
    helpers: list[dict], live: list[dict], now: datetime, liveness: timedelta
) -> Fleet:
    """Each helper's view by helper id, as a Fleet: a mapping whose rows for
    select() are built here, once per dispatch pass."""
    reserved: dict[str, list[dict]] = {}
    for a in live:
        reserved.setdefault(a["helper_id"], []).append(a.get("reservation") or {})
    return Fleet(view_of(h, reserved.get(h["helper_id"], []), now, liveness) for h in helpers)


def view_of(doc: dict, reservations: list[dict], now: datetime, liveness: timedelta) -> HelperView:
    res = doc.get("resources") or {}
    devices = devices_of(res.get("gpus", []))
    gpus_free, gpus_taken = after_reservations(devices, reservations)
    return HelperView(
        helper_id=doc["helper_id"],
        name=doc["name"],
        slots=doc.get("slots", 1),
        running=len(reservations),
        prefetch=doc.get("prefetch", 0),
        cpus_total=res.get("cpus", 0),
        cpus_free=res.get("cpus", 0) - sum(r.get("cpus", 0) for r in reservations),
        memory_total=res.get("memory_total", 0),
        memory_free=res.get("memory_total", 0) - sum(r.get("memory", 0) for r in reservations),
        gpus_free=gpus_free,
        gpus_total=len(devices),
        labels=doc.get("labels") or {},
        online=is_online(doc, now, liveness),
        failures=doc.get("failures", 0),
        allowed_images=tuple((doc.get("policy") or {}).get("images", [])),
        allowed_mounts=tuple((doc.get("policy") or {}).get("mounts", [])),
        gpus_taken=gpus_taken,
        images=frozenset(res.get("images") or ()),
    )


def liveness_of(doc: dict, liveness: timedelta) -> timedelta:
    """How long a helper may be silent before its work runs elsewhere: the
    seeker's --liveness, or two of its heartbeats when its heartbeat
    interval grew with the fleet."""
    beat = doc.get("heartbeat") or 0
    return max(liveness, timedelta(seconds=2 * beat))


def is_online(doc: dict, now: datetime, liveness: timedelta) -> bool:
    """Heard from within its liveness deadline and, for a pulling helper,
    not gone: gone is a poll connection that dropped and did not come back
    within its grace, until the helper polls on a new connection."""
    seen = as_utc(doc.get("last_seen"))
    if seen is None or seen < now - liveness_of(doc, liveness):
        return False
    poll = doc.get("poll") or {}
    gone, back = as_utc(poll.get("gone_at")), as_utc(poll.get("connected_at"))
    return gone is None or (back is not None and back > gone)


def after_placing(view: HelperView, reservation: dict) -> HelperView:
    """The view once `reservation` is placed on it (within one dispatch pass)."""
    gpus_free, gpus_taken = after_reservations(view.gpus_free, [reservation])
    return replace(
        view,
        running=view.running + 1,
        cpus_free=view.cpus_free - reservation.get("cpus", 0),
        memory_free=view.memory_free - reservation.get("memory", 0),
        gpus_free=gpus_free,
        gpus_taken=view.gpus_taken + gpus_taken,
    )


def as_utc(ts: datetime | None) -> datetime | None:
    """mongomock and some servers hand back naive UTC datetimes."""
    return ts if ts is None or ts.tzinfo else ts.replace(tzinfo=timezone.utc)
