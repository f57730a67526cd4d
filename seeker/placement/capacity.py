"""What each helper has free right now: its report, less what live
assignments have reserved on it (so two pushes between two reports never
oversubscribe a helper)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from itertools import compress
from operator import is_not

from seeker.placement.fleet import Fleet, row_of
from seeker.placement.gpus import after_reservations, devices_of
from seeker.placement.live import LiveSet
from seeker.placement.views import HelperView


def helper_views(
    helpers: list[dict], live: list[dict] | LiveSet, now: datetime, liveness: timedelta
) -> Fleet:
    """Each helper's view by helper id, as a Fleet: a mapping whose rows for
    select() are built here (the dispatcher keeps its fleet from one pass to
    the next: KeptViews)."""
    return KeptViews().fleet(helpers, live, now, liveness)


# what a helper's contacts write to its document besides its failure count
# (HelperStore.seen(), without `changed_at`): a view reads them only through
# online_until()
CONTACT = {"last_seen": None, "heartbeat": None}
NEVER = datetime.max.replace(tzinfo=timezone.utc)


class KeptViews:
    """helper_views() from one placement pass to the next: the same Fleet,
    in which a helper's view and row are built again only when its document
    is another object (the registry read it again: HelperStore.registry())
    that differs in more than what contacts write (CONTACT), its live
    assignments are others, it came online or went offline, or the
    last pass set its view (after placing there); the rest are the last
    pass's. A pass over a fleet of thousands with a few changes is a few
    views built, and for the rest one comparison of each document with the
    last pass's, made in C (when a helper goes offline is worked out once
    per document, online_until(), and the helpers are looked at one by one
    only once the first of them may have gone offline). A helper that
    joined or left, another order, another liveness or a clock gone back
    builds the whole fleet again."""

    def __init__(self):
        # helper id -> (its document, online_until(), live assignment ids, online)
        self._kept: dict[str, tuple[dict, datetime | None, frozenset, bool]] = {}
        self._docs: list[dict] = []  # the last pass's documents, in the order of the fleet
        # no online helper goes offline before this (a bound: it may be earlier)
        self._earliest: datetime = NEVER
        self._order: list[str] = []  # the helper ids, in the order of the fleet
        self._index: dict[str, int] = {}  # helper id -> its place in that order
        self._held: set[str] = set()  # the helpers that held live assignments
        self._live: LiveSet | None = None  # the last pass's (kept by the store)
        self._fleet: Fleet | None = None
        self._liveness: timedelta | None = None  # the one the kept times were worked out with
        self._now: datetime | None = None  # the last pass's

    def fleet(
        self, helpers: list[dict], live: list[dict] | LiveSet, now: datetime, liveness: timedelta
    ) -> Fleet:
        """`live`: the live assignments; the LiveSet the last pass had,
        kept by the store, tells which helpers' changed since (another, or
        a list, is compared helper by helper)."""
        if not isinstance(live, LiveSet):
            live = LiveSet(live)
        # the helpers whose live assignments changed since the last pass, if
        # it had this set (taken either way: a set seen once is news no more)
        since = live.take_changed()
        held_changed = since if live is self._live else None
        self._live = live
        fleet = self._fleet
        touched = fleet.touched() if fleet is not None else set()  # by the last pass
        changed = None
        if fleet is not None and liveness == self._liveness and now >= self._now:
            changed = self._changed(helpers, live, held_changed, now, liveness, touched)
        if changed is None:
            return self._build(helpers, live, now, liveness, touched)
        self._now = now
        for h in changed.values():
            self._keep(h, live, now, liveness, fleet)
        return fleet

    def _changed(
        self,
        helpers: list[dict],
        live: LiveSet,
        held_changed: set[str] | None,
        now: datetime,
        liveness: timedelta,
        touched: set[str],
    ) -> dict[str, dict] | None:
        """The helpers whose views are to be built again, by id, with their
        documents; None: the fleet as a whole (its helpers, or their order,
        are others)."""
        order, kept, fleet, docs = self._order, self._kept, self._fleet, self._docs
        if len(helpers) != len(order):
            return None
        changed: dict[str, dict] = {}
        # only the documents that are other objects than the last pass's
        for i in compress(range(len(helpers)), map(is_not, helpers, docs)):
            h = helpers[i]
            helper_id = h["helper_id"]
            if order[i] != helper_id:
                return None
            docs[i] = h
            if not self._contact(kept[helper_id], h, now, liveness):
                changed[helper_id] = h
        index = self._index
        if now > self._earliest:  # a helper may have gone offline
            for helper_id in self._gone_offline(now):
                changed[helper_id] = helpers[index[helper_id]]
        for helper_id in touched:
            if helper_id not in index or helper_id not in fleet:  # added or removed there
                return None
            changed[helper_id] = helpers[index[helper_id]]
        for helper_id in self._held_other(live, held_changed):
            changed[helper_id] = helpers[index[helper_id]]
        return changed

    def _gone_offline(self, now: datetime) -> list[str]:
        """The helpers kept as online whose deadline passed by `now`; and the
        bound of the next deadline worked out again."""
        gone, earliest = [], NEVER
        for helper_id, (_, until, _, online) in self._kept.items():
            if not online:
                continue
            if now > until:
                gone.append(helper_id)
            elif until < earliest:
                earliest = until
        self._earliest = earliest
        return gone

    def _held_other(self, live: LiveSet, held_changed: set[str] | None) -> list[str]:
        """The helpers whose live assignments are others than at the last
        pass: among `held_changed`, those the store saw change since (None:
        any that held some then or holds some now). Brings `_held`, the
        helpers that hold some, up to this pass."""
        kept, other, held = self._kept, [], self._held
        if held_changed is None:
            changed = held.union(live.by_helper)
            held.clear()
            held.update(live.by_helper)
        else:
            changed = held_changed
            for helper_id in changed:
                if helper_id in live.by_helper:
                    held.add(helper_id)
                else:
                    held.discard(helper_id)
        for helper_id in changed:
            if helper_id not in kept:
                continue  # an assignment of a helper gone from the registry
            if live.ids(helper_id) != kept[helper_id][2]:
                other.append(helper_id)
        return other

    def _contact(self, before: tuple, h: dict, now: datetime, liveness: timedelta) -> bool:
        """Whether a helper's row stands for its new document `h`: it differs
        from the kept one only in what contacts write (heartbeats, reports:
        CONTACT), and the helper is as online as it was. Then `h` is kept,
        with when it goes offline now."""
        if {**before[0], **CONTACT} != {**h, **CONTACT}:
            return False
        until = online_until(h, liveness)
        online = online_at(until, now)
        if online != before[3]:
            return False
        self._kept[h["helper_id"]] = (h, until, before[2], online)
        self._bound(until, online)
        return True

    def _bound(self, until: datetime | None, online: bool) -> None:
        """Keep the bound of the next deadline at or before that of a helper
        kept as `online` until `until`."""
        if online and until < self._earliest:
            self._earliest = until

    def _build(self, helpers, live: LiveSet, now, liveness, touched: set[str]) -> Fleet:
        """The whole fleet, anew, with the rows of the last one that still
        stand (not `touched` by the last pass, nothing else changed)."""
        before = self._kept if liveness == self._liveness else {}
        rows = []
        kept: dict[str, tuple[dict, datetime | None, frozenset, bool]] = {}
        old = self._fleet
        self._earliest = NEVER
        for h in helpers:
            helper_id = h["helper_id"]
            b = before.get(helper_id)
            entry = kept[helper_id] = self._entry(h, live, now, liveness, b)
            self._bound(entry[1], entry[3])
            if b is not None and b[0] is h and b[2:] == entry[2:] and helper_id not in touched:
                rows.append(old.row(helper_id))
            else:
                rows.append(row_of(view_of(h, live.reservations(helper_id), now, liveness)))
        self._kept, self._order = kept, [h["helper_id"] for h in helpers]
        self._docs = list(helpers)
        self._index = {helper_id: i for i, helper_id in enumerate(self._order)}
        self._held, self._now, self._liveness = set(live.by_helper), now, liveness
        self._fleet = Fleet(rows=rows)
        return self._fleet

    def _keep(self, h, live: LiveSet, now, liveness, fleet: Fleet) -> None:
        """Build one helper's view again from its document and assignments."""
        helper_id = h["helper_id"]
        entry = self._kept[helper_id] = self._entry(h, live, now, liveness, self._kept[helper_id])
        self._bound(entry[1], entry[3])
        fleet.put(row_of(view_of(h, live.reservations(helper_id), now, liveness)))

    @staticmethod
    def _entry(
        h, live: LiveSet, now, liveness, before
    ) -> tuple[dict, datetime | None, frozenset, bool]:
        """What is kept of a helper: its document, when it goes offline
        (worked out again only for another document), its live assignment
        ids, and whether it is online at `now`."""
        same = before is not None and before[0] is h
        until = before[1] if same else online_until(h, liveness)
        return h, until, live.ids(h["helper_id"]), online_at(until, now)


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
    return online_at(online_until(doc, liveness), now)


def online_at(until: datetime | None, now: datetime) -> bool:
    """Whether a helper online until `until` (online_until) is online at `now`."""
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
