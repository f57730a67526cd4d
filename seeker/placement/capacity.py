"""What each helper has free right now: its report, less what live
assignments have reserved on it (so two pushes between two reports never
oversubscribe a helper)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from seeker.placement.fleet import Fleet, row_of
from seeker.placement.gpus import after_reservations, devices_of
from seeker.placement.views import HelperView


def helper_views(
    helpers: list[dict], live: list[dict], now: datetime, liveness: timedelta
) -> Fleet:
    """Each helper's view by helper id, as a Fleet: a mapping whose rows for
    select() are built here, once per dispatch pass (KeptViews keeps them
    from one pass to the next)."""
    return KeptViews().fleet(helpers, live, now, liveness)


NONE_HELD: frozenset = frozenset()  # the live assignments of most helpers in a large fleet


class KeptViews:
    """helper_views() from one placement pass to the next: a helper's view
    and row are built again only when its document is another object (the
    registry read it again: HelperStore.registry()), its live assignments
    are others, or it came online or went offline; the rest are the last
    pass's. A fleet of thousands with a few changes is a few views built,
    and for each of the rest a dictionary look-up and a comparison of times
    (when it goes offline is worked out once per document: online_until)."""

    def __init__(self):
        # helper id -> (its document, online_until(), live assignment ids, online, its row)
        self._kept: dict[str, tuple[dict, datetime | None, frozenset, bool, object]] = {}
        self._liveness: timedelta | None = None  # the one the kept times were worked out with

    def fleet(
        self, helpers: list[dict], live: list[dict], now: datetime, liveness: timedelta
    ) -> Fleet:
        reserved: dict[str, list[dict]] = {}
        held: dict[str, list[str]] = {}
        for a in live:
            reserved.setdefault(a["helper_id"], []).append(a.get("reservation") or {})
            held.setdefault(a["helper_id"], []).append(a.get("_id"))
        if liveness != self._liveness:
            self._kept, self._liveness = {}, liveness
        kept, rows = {}, []
        for h in helpers:
            helper_id = h["helper_id"]
            ids = held.get(helper_id)
            ids = NONE_HELD if ids is None else frozenset(ids)
            before = self._kept.get(helper_id)
            same = before is not None and before[0] is h
            until = before[1] if same else online_until(h, liveness)
            online = until is not None and now <= until
            if same and before[2] == ids and before[3] == online:
                row = before[4]
            else:
                row = row_of(view_of(h, reserved.get(helper_id, []), now, liveness))
            kept[helper_id] = (h, until, ids, online, row)
            rows.append(row)
        self._kept = kept
        return Fleet(rows=rows)


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


def online_until(doc: dict, liveness: timedelta) -> datetime | None:
    """The last moment the helper counts as online (is_online), from its
    document alone: heard from within its liveness deadline and, for a
    pulling helper, not gone; gone is a poll connection that dropped and
    did not come back within its grace, until the helper polls on a new
    connection. None: it does not count as online at all."""
    seen = as_utc(doc.get("last_seen"))
    if seen is None:
        return None
    poll = doc.get("poll") or {}
    gone, back = as_utc(poll.get("gone_at")), as_utc(poll.get("connected_at"))
    if gone is not None and (back is None or back <= gone):
        return None
    return seen + liveness_of(doc, liveness)


def is_online(doc: dict, now: datetime, liveness: timedelta) -> bool:
    until = online_until(doc, liveness)
    return until is not None and now <= until


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
