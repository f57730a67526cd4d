"""The helper registry in the seeker's database: one document per helper
(what it registered, when it was last heard from, its failed contacts and
the nonces of its credential)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from seeker.placement.capacity import is_online
from serving.clock import utc_now
from serving.errors import Conflict

# How long this process trusts what it read of a helper (its credential, its
# mode, its process). Other seekers on the database change it too (a purge,
# a rotation): they are heard of at once through the change feed where the
# server has one (seeker/control/changes.py), which then sets a long time
# (FOLLOWED_TTL), and after AUTH_TTL where it has not.
AUTH_TTL = timedelta(seconds=5)
FOLLOWED_TTL = timedelta(hours=1)
# the prober's bands of heartbeat intervals (pushed_silent_since) end at
# 300 s, the interval of a 15,000-helper fleet; longer ones share one band
BANDS_UP_TO = 300.0
# what a request from a helper needs to know of it, read once per TTL
SUMMARY = {"auth": 1, "mode": 1, "name": 1, "boot_id": 1, "heartbeat": 1}
# a helper's name and what tells whether it is online (is_online)
ROSTER = {"name": 1, "last_seen": 1, "heartbeat": 1, "poll": 1}
# The registry as a placement pass reads it (registry()), where this process
# follows it: the documents whose `changed_at` is at most SKEW before the
# last read (writes in flight, other seekers' clocks), and the whole registry
# every FULL_READ (helpers removed, a clock further apart, and the contacts,
# which leave `changed_at` alone: a helper heard from, or told a new
# heartbeat interval, is no news to a placement; its `last_seen` and
# interval are then at most FULL_READ old, well within the liveness).
SKEW = timedelta(seconds=5)
FULL_READ = timedelta(seconds=10)


class HelperStore:
    def __init__(self, db: Database, clock: Callable[[], datetime] = utc_now):
        self.helpers = db["helpers"]
        # helper id -> (when read, its summary or None once gone): read on
        # every request a helper makes
        self._auth: dict[str, tuple[datetime, dict | None]] = {}
        self.clock = clock
        self.auth_ttl = AUTH_TTL
        # the registry as last read (follow()): helper id -> document, by
        # name; when it was last read, and last read whole
        self._following = False
        self._registry: dict[str, dict] = {}
        self._read_at: datetime | None = None
        self._read_whole_at: datetime | None = None
        self._registry_lock = threading.Lock()

    def ensure_indexes(self) -> None:
        self.helpers.create_index("name", unique=True, name="unique_name")
        self.helpers.create_index("changed_at", name="by_change")

    def follow(self) -> HelperStore:
        """Keep the registry between placement passes (see registry())."""
        self._following = True
        return self

    def register(self, reg: dict, now: datetime, nonce: str | None = None) -> dict:
        """Insert or refresh a helper; a name held by another helper id is a
        conflict. A `nonce` issues a new credential (the one before stays in
        "previous" for its grace period)."""
        other = self.helpers.find_one({"name": reg["name"], "_id": {"$ne": reg["helper_id"]}})
        if other is not None:
            raise Conflict(
                f"helper name {reg['name']!r} is taken by helper {other['_id']}",
                "give this helper another --name, or remove the old one with "
                f"'seeker helpers --remove {other['_id']}'",
            )
        fields = {k: v for k, v in reg.items() if k != "helper_id"}
        if nonce is not None:
            before = self.auth_of(reg["helper_id"])
            fields["auth"] = {
                "nonce": nonce,
                "previous": before["nonce"] if before else None,
                "rotated_at": now,
            }
        try:
            doc = self.helpers.find_one_and_update(
                {"_id": reg["helper_id"]},
                {
                    "$set": {
                        **fields,
                        "last_seen": now,
                        "failures": 0,
                        "updated_at": now,
                        "changed_at": now,
                    },
                    "$setOnInsert": {"registered_at": now},
                },
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            self._auth.pop(reg["helper_id"], None)
            raise Conflict(
                f"helper name {reg['name']!r} is taken", "choose another --name"
            ) from None
        # what its next requests need, as this write left it: a helper that
        # (re-)registered is not read again at its first heartbeat or poll
        self._auth[reg["helper_id"]] = (self.clock(), summary_of(doc))
        return helper_json(doc)

    def auth_of(self, helper_id: str) -> dict | None:
        """The nonces of a helper's credential (None: no such helper, or none issued)."""
        return (self.summary(helper_id) or {}).get("auth")

    def summary(self, helper_id: str) -> dict | None:
        """What requests from a helper need to know of it (its credential's
        nonces, mode, name, process, heartbeat interval), from this
        process's cache (see AUTH_TTL); None: no such helper."""
        cached = self._auth.get(helper_id)
        now = self.clock()
        if cached is not None and timedelta(0) <= now - cached[0] < self.auth_ttl:
            return cached[1]
        doc = self.helpers.find_one({"_id": helper_id}, SUMMARY)
        summary = summary_of(doc) if doc is not None else None
        self._auth[helper_id] = (now, summary)
        return summary

    def seen(
        self, helper_ids: list[str], now: datetime, intervals: dict[str, float] | None = None
    ) -> None:
        """Helpers that answered or reported since the last such write: one
        write for all of them (their failure counts start over), and one
        more for each new heartbeat interval among `intervals` (helper id ->
        the seconds it now beats at)."""
        wanted = set(helper_ids)
        intervals = {k: v for k, v in (intervals or {}).items() if k in wanted}
        by_interval: dict[float | None, list[str]] = {}
        for helper_id in helper_ids:
            by_interval.setdefault(intervals.get(helper_id), []).append(helper_id)
        for seconds, ids in by_interval.items():
            fields = {"last_seen": now, "failures": 0}
            if seconds is not None:
                fields["heartbeat"] = seconds
            self.helpers.update_many({"_id": {"$in": ids}}, {"$set": fields})
        for helper_id, seconds in intervals.items():
            self._noted_heartbeat(helper_id, seconds)

    def set_heartbeat(self, helper_id: str, seconds: float) -> None:
        """The heartbeat interval the helper now beats at (its liveness
        deadline, and when the prober asks it, follow from it)."""
        self.helpers.update_one({"_id": helper_id}, {"$set": {"heartbeat": seconds}})
        self._noted_heartbeat(helper_id, seconds)

    def _noted_heartbeat(self, helper_id: str, seconds: float) -> None:
        cached = self._auth.get(helper_id)
        if cached is not None and cached[1] is not None:
            self._auth[helper_id] = (cached[0], {**cached[1], "heartbeat": seconds})

    def pushed_silent_since(self, now: datetime, min_heartbeat: float, grace: float) -> list[dict]:
        """The pushed helpers that may have missed a heartbeat (pulling
        helpers are never contacted): what the prober asks, without reading
        the whole registry. A helper is silent once not heard from for its
        own interval and `grace` (at least `min_heartbeat`'s); the query
        groups intervals in bands, each an eighth wider than the one below,
        and reads a band's helpers once silent past its lower edge. So a
        helper is read after 8/9 of its interval at the earliest: a fleet
        whose intervals are all near 100 s (told 96, 98, 100 s as it grew)
        is not read whole every 10 s for being silent past 20 s."""

        def silent_past(seconds: float) -> dict:
            return {"$lt": now - timedelta(seconds=seconds + grace)}

        bands: list[dict] = [
            {"heartbeat": None, "last_seen": silent_past(min_heartbeat)},
            {"heartbeat": {"$lt": min_heartbeat}, "last_seen": silent_past(min_heartbeat)},
        ]
        low = min_heartbeat
        while low < BANDS_UP_TO:
            high = low * 1.125
            band = {"heartbeat": {"$gte": low, "$lt": high}, "last_seen": silent_past(low)}
            bands.append(band)
            low = high
        bands.append({"heartbeat": {"$gte": low}, "last_seen": silent_past(low)})
        query = {"mode": {"$ne": "pull"}, "last_seen": silent_past(min_heartbeat), "$or": bands}
        return [helper_json(d) for d in self.helpers.find(query, {"auth": 0})]

    def count(self) -> int:
        return self.helpers.count_documents({})

    def forget(self, helper_id: str) -> None:
        """Another seeker changed this helper (its credential, or removed
        it): read it afresh next time."""
        self._auth.pop(helper_id, None)
        with self._registry_lock:
            self._registry.pop(helper_id, None)

    def get(self, helper_id: str) -> dict | None:
        doc = self.helpers.find_one({"_id": helper_id})
        return helper_json(doc) if doc else None

    def list(self) -> list[dict]:
        found = self.helpers.find({}, {"auth": 0}).sort("name", ASCENDING)
        return [helper_json(d) for d in found]

    def roster(self) -> list[dict]:
        """Every helper's name and what tells whether it is online
        (ROSTER), in no order: what a page of the list is chosen from. At
        5,000 helpers SecantusDB reads these in 140-150 ms of its CPU, the
        whole documents in 400-460 ms; a sorted page of them costs it about
        as much as sorting every match (bench/findings.md 61)."""
        return list(self.helpers.find({}, ROSTER))

    def named(self, name: str) -> dict | None:
        """The helper of this name (names are unique), or None."""
        doc = self.helpers.find_one({"name": name}, {"auth": 0})
        return helper_json(doc) if doc else None

    def named_between(self, first: str, last: str) -> dict[str, dict]:
        """The helpers whose names are from `first` to `last`, by id: a read
        of the name index's range (SecantusDB reads 1,000 documents so in
        60-80 ms of its CPU, and by 1,000 ids in about 0.8 s)."""
        found = self.helpers.find({"name": {"$gte": first, "$lte": last}}, {"auth": 0})
        return {d["_id"]: helper_json(d) for d in found}

    def of(self, helper_ids: list[str]) -> dict[str, dict]:
        """These helpers (those still registered), by id."""
        found = self.helpers.find({"_id": {"$in": sorted(helper_ids)}}, {"auth": 0})
        return {d["_id"]: helper_json(d) for d in found}

    def registry(self) -> dict[str, dict]:
        """Every helper, by id, in the order of their names: what a placement
        pass reads. Where this process follows the registry (follow()), only
        the documents changed since the last read are asked for, and the
        whole registry every FULL_READ (see SKEW): a pass over a fleet of
        thousands reads the few that changed, not thousands. Else, all."""
        if not self._following:
            return {h["helper_id"]: h for h in self.list()}
        now = self.clock()
        with self._registry_lock:
            # a document read again as it was is kept as the object it was:
            # a placement pass builds again only the helpers whose object
            # is another (seeker.placement.capacity.KeptViews)
            if (
                self._read_at is None
                or self._read_whole_at is None
                or not timedelta(0) <= now - self._read_whole_at < FULL_READ
            ):
                before = self._registry
                self._registry = {h["helper_id"]: same(before, h) for h in self.list()}
                self._read_whole_at = now
            else:
                query = {"changed_at": {"$gte": self._read_at - SKEW}}
                docs = [helper_json(d) for d in self.helpers.find(query, {"auth": 0})]
                new = any(h["helper_id"] not in self._registry for h in docs)
                for h in docs:
                    self._registry[h["helper_id"]] = same(self._registry, h)
                if new:  # in the order of their names, as list() gives them
                    ordered = sorted(self._registry.values(), key=lambda h: h["name"])
                    self._registry = {h["helper_id"]: h for h in ordered}
            self._read_at = now
            return dict(self._registry)

    def refresh(self, helper_id: str, resources: dict | None, now: datetime) -> dict | None:
        """A probe answered: new resources (if it sent any), and the failure
        count starts over."""
        sets = {"last_seen": now, "failures": 0, "updated_at": now, "changed_at": now}
        if resources:
            sets["resources"] = resources
        return self.helpers.find_one_and_update(
            {"_id": helper_id},
            {"$set": sets},
            projection={"auth": 0},
            return_document=ReturnDocument.AFTER,
        )

    def contact_ok(self, helper_id: str, now: datetime) -> None:
        self.helpers.update_one({"_id": helper_id}, {"$set": {"failures": 0, "last_seen": now}})

    def contact_failed(self, helper_id: str, now: datetime, reason: str) -> int | None:
        """Count one failed contact; returns the consecutive count (None if gone)."""
        doc = self.helpers.find_one_and_update(
            {"_id": helper_id},
            {
                "$inc": {"failures": 1},
                "$set": {"last_failure": {"at": now, "reason": reason}, "changed_at": now},
            },
            return_document=ReturnDocument.AFTER,
        )
        return doc["failures"] if doc else None

    def poll_connected(self, helper_id: str, now: datetime) -> None:
        """A pulling helper polls on a new connection (after a drop, or at
        its start): it is back, on this seeker or another one."""
        sets = {"poll.connected_at": now, "changed_at": now}
        self.helpers.update_one({"_id": helper_id}, {"$set": sets})

    def poll_gone(self, helper_id: str, now: datetime) -> None:
        """Its poll connection dropped and it did not come back in time: it
        is offline until it polls on a new connection."""
        self.helpers.update_one(
            {"_id": helper_id}, {"$set": {"poll.gone_at": now, "changed_at": now}}
        )

    def count_others(self, helper_ids: set[str]) -> int:
        """How many registered helpers are not among `helper_ids`."""
        return self.helpers.count_documents({"_id": {"$nin": sorted(helper_ids)}})

    def remove(self, helper_id: str) -> bool:
        """Forget a helper, and with it its credential."""
        try:
            return self.helpers.delete_one({"_id": helper_id}).deleted_count == 1
        finally:
            self.forget(helper_id)

    def purge(self, helper_id: str, failures: int) -> bool:
        """Forget a helper that still has at least `failures` consecutive
        failed contacts: one that registered or answered meanwhile (its
        count started over) stays."""
        try:
            gone = self.helpers.delete_one({"_id": helper_id, "failures": {"$gte": failures}})
            return gone.deleted_count == 1
        finally:
            self.forget(helper_id)


def offline_in(roster: list[dict], now: datetime, liveness: timedelta) -> set[str]:
    """The ids of the helpers of a roster (HelperStore.roster) offline at
    `now` (is_online)."""
    return {d["_id"] for d in roster if not is_online(d, now, liveness)}


def summary_of(doc: dict) -> dict:
    """The SUMMARY fields of a helper document, with its id as `helper_id`."""
    return {**{k: doc[k] for k in SUMMARY if k in doc}, "helper_id": doc["_id"]}


def helper_json(doc: dict) -> dict:
    """A helper as the API shows it: never its credential's nonces."""
    out = {k: v for k, v in doc.items() if k not in ("_id", "auth")}
    out["helper_id"] = doc["_id"]
    return out


def same(registry: dict[str, dict], doc: dict) -> dict:
    """`doc`, or the registry's document of the same helper when it is equal."""
    before = registry.get(doc["helper_id"])
    return before if before == doc else doc
