"""The queries over the assignments (seeker/store/assignments.py holds
their state changes): a task's, a helper's, the live ones as a placement
pass reads them. A half of AssignmentStates, which TaskStore
(seeker/store/tasks.py) is made of."""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ASCENDING

from seeker.helper_models import HelperMode
from seeker.models import AssignmentState
from seeker.placement.live import LiveSet
from seeker.store.helpers import FULL_READ, SKEW

# what a pulling helper may be handed: offers, and what it took but lost the answer to
OFFERED = (AssignmentState.PUSHING, AssignmentState.ACCEPTED)
# what a placement pass reads of each live assignment (and its `_id`): whose
# it is, what it holds there (capacity.KeptViews) and which slot
# (dispatch_state.slots_in_use)
FOR_PLACEMENT = {"helper_id": 1, "reservation": 1, "slot": 1}
# The live assignments as a placement pass reads them (live_for_placement),
# where this process follows them (follow_live): while they are at least
# FOLLOW_FROM, only the assignments whose liveness changed since the last
# read (`changed_at`, set by a placement, an end, a revival; read from SKEW
# before the last read: writes in flight, other seekers' clocks), and all of
# them every FULL_READ (an assignment changed by a writer that did not set
# it). Fewer are read whole at every pass: a busy database changes more
# assignments in SKEW than a fleet running a few has live.
FOLLOW_FROM = 256


class AssignmentReads:
    """What TaskStore reads of its assignments (`self.assignments`)."""

    def assignments_of(self, task_id: str) -> list[dict]:
        return list(self.assignments.find({"task_id": task_id}).sort("attempt", ASCENDING))

    def live_assignments(self) -> dict[str, int]:
        """Number of live assignments per helper id."""
        counts: dict[str, int] = {}
        for a in self.assignments.find(
            {"state": {"$in": AssignmentState.live()}}, {"helper_id": 1}
        ):
            counts[a["helper_id"]] = counts.get(a["helper_id"], 0) + 1
        return counts

    def stale_pushes(self, before: datetime) -> list[dict]:
        """Assignments recorded for a push that never got an answer (the
        seeker died during it), assigned before `before`."""
        return list(
            self.assignments.find(
                {
                    "state": AssignmentState.PUSHING.value,
                    "assigned_at": {"$lt": before},
                    "via": {"$ne": HelperMode.PULL.value},
                }
            )
        )

    def offers_for(self, helper_id: str, boot_id: str, have: set[str]) -> list[dict]:
        """What a pulling helper is to be handed: offers it has not
        acknowledged, and what this process of it acknowledged but does not
        have (the answer to its acknowledgement was lost)."""
        found = self.assignments.find(
            {"state": {"$in": OFFERED}, "helper_id": helper_id},
        ).sort("assigned_at", ASCENDING)
        return [
            a
            for a in found
            if a["_id"] not in have
            and (
                (a["state"] == AssignmentState.PUSHING.value and a.get("via") == HelperMode.PULL)
                or (a["state"] == AssignmentState.ACCEPTED.value and a.get("boot_id") == boot_id)
            )
        ]

    def unacknowledged(self, before: datetime) -> list[dict]:
        """Offers to pulling helpers made before `before` and not yet taken."""
        return list(
            self.assignments.find(
                {
                    "state": AssignmentState.PUSHING.value,
                    "assigned_at": {"$lt": before},
                    "via": HelperMode.PULL,
                }
            )
        )

    def assignments_by_key(self, keys: list[str]) -> dict[str, dict]:
        return {a["_id"]: a for a in self.assignments.find({"_id": {"$in": list(keys)}})}

    def live_assignment_docs(
        self,
        helper_id: str | None = None,
        fields: dict | None = None,
        helper_ids: list[str] | None = None,
    ) -> list[dict]:
        """The live assignments (of `helper_id`, or of those `helper_ids`),
        whole or only `fields`."""
        query: dict = {"state": {"$in": AssignmentState.live()}}
        if helper_id is not None:
            query["helper_id"] = helper_id
        elif helper_ids is not None:
            query["helper_id"] = {"$in": sorted(helper_ids)}
        return list(self.assignments.find(query, fields))

    def follow_live(self) -> AssignmentReads:
        """Keep the live assignments between placement passes (see
        live_for_placement)."""
        self._following_live = True
        return self

    def live_for_placement(self, now: datetime) -> LiveSet:
        """Every live assignment, with only what a placement pass reads of
        it (FOR_PLACEMENT): a live assignment's document has 11-14 fields,
        each decoded. Where this process follows them (follow_live), only
        those changed since the last read, once they are many (FOLLOW_FROM):
        2,000 running cost SecantusDB about 55 ms a read. The same LiveSet
        as the last read's, brought up to date, or a new one read whole."""
        if not self._following_live:
            return LiveSet(self.live_assignment_docs(fields=FOR_PLACEMENT))
        with self._live_lock:
            live, read = self._live, self._live_read
            if (
                live is None
                or read is None
                or len(live) < FOLLOW_FROM
                or not timedelta(0) <= now - read[1] < FULL_READ
                or now < read[0]
            ):
                self._live = LiveSet(self.live_assignment_docs(fields=FOR_PLACEMENT))
                self._live_read = (now, now)
                return self._live
            since = {"changed_at": {"$gte": read[0] - SKEW}}
            for a in self.assignments.find(since, {**FOR_PLACEMENT, "state": 1}):
                if a.pop("state") in AssignmentState.live():
                    live.put(a)
                else:
                    live.drop(a["_id"])
            self._live_read = (now, read[1])
            return live
