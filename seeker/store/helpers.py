"""The helper registry in the seeker's database: one document per helper
(what it registered, when it was last heard from, its failed contacts and
the nonces of its credential)."""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from serving.errors import Conflict


class HelperStore:
    def __init__(self, db: Database):
        self.helpers = db["helpers"]
        # helper id -> its credential's nonces ("auth"), or None once gone: read
        # on every request a helper makes, changed only through this object
        self._auth: dict[str, dict | None] = {}

    def ensure_indexes(self) -> None:
        self.helpers.create_index("name", unique=True, name="unique_name")

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
                    "$set": {**fields, "last_seen": now, "failures": 0, "updated_at": now},
                    "$setOnInsert": {"registered_at": now},
                },
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            raise Conflict(
                f"helper name {reg['name']!r} is taken", "choose another --name"
            ) from None
        finally:
            self._auth.pop(reg["helper_id"], None)
        return helper_json(doc)

    def auth_of(self, helper_id: str) -> dict | None:
        """The nonces of a helper's credential (None: no such helper, or none issued)."""
        if helper_id not in self._auth:
            doc = self.helpers.find_one({"_id": helper_id}, {"auth": 1})
            self._auth[helper_id] = (doc or {}).get("auth")
        return self._auth[helper_id]

    def get(self, helper_id: str) -> dict | None:
        doc = self.helpers.find_one({"_id": helper_id})
        return helper_json(doc) if doc else None

    def list(self) -> list[dict]:
        found = self.helpers.find({}, {"auth": 0}).sort("name", ASCENDING)
        return [helper_json(d) for d in found]

    def refresh(self, helper_id: str, resources: dict | None, now: datetime) -> dict | None:
        """A probe answered: new resources (if it sent any), and the failure
        count starts over."""
        sets = {"last_seen": now, "failures": 0, "updated_at": now}
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
            {"$inc": {"failures": 1}, "$set": {"last_failure": {"at": now, "reason": reason}}},
            return_document=ReturnDocument.AFTER,
        )
        return doc["failures"] if doc else None

    def poll_connected(self, helper_id: str, now: datetime) -> None:
        """A pulling helper polls on a new connection (after a drop, or at
        its start): it is back, on this seeker or another one."""
        self.helpers.update_one({"_id": helper_id}, {"$set": {"poll.connected_at": now}})

    def poll_gone(self, helper_id: str, now: datetime) -> None:
        """Its poll connection dropped and it did not come back in time: it
        is offline until it polls on a new connection."""
        self.helpers.update_one({"_id": helper_id}, {"$set": {"poll.gone_at": now}})

    def count_others(self, helper_ids: set[str]) -> int:
        """How many registered helpers are not among `helper_ids`."""
        return self.helpers.count_documents({"_id": {"$nin": sorted(helper_ids)}})

    def remove(self, helper_id: str) -> bool:
        """Forget a helper, and with it its credential."""
        try:
            return self.helpers.delete_one({"_id": helper_id}).deleted_count == 1
        finally:
            self._auth[helper_id] = None

    def purge(self, helper_id: str, failures: int) -> bool:
        """Forget a helper that still has at least `failures` consecutive
        failed contacts: one that registered or answered meanwhile (its
        count started over) stays."""
        try:
            gone = self.helpers.delete_one({"_id": helper_id, "failures": {"$gte": failures}})
            return gone.deleted_count == 1
        finally:
            self._auth[helper_id] = None


def helper_json(doc: dict) -> dict:
    """A helper as the API shows it: never its credential's nonces."""
    out = {k: v for k, v in doc.items() if k not in ("_id", "auth")}
    out["helper_id"] = doc["_id"]
    return out
