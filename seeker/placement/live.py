"""The live assignments as placement passes read them (each its `_id`,
`helper_id`, `reservation` and `slot`), grouped by helper, kept from one
pass to the next where the store follows them
(AssignmentReads.live_for_placement): which helpers' assignments changed
is noted as they change, so a pass over thousands of live assignments
looks at the helpers whose did, not at every assignment."""

from __future__ import annotations

from collections.abc import Iterable

NONE_HELD: frozenset = frozenset()  # the live assignments of most helpers in a large fleet


class LiveSet:
    def __init__(self, docs: Iterable[dict] = ()):
        # helper id -> assignment id -> the assignment
        self.by_helper: dict[str, dict[str, dict]] = {}
        self._helper_of: dict[str, str] = {}  # assignment id -> helper id
        # the helpers whose live assignments changed since take_changed()
        self._changed: set[str] = set()
        for a in docs:
            self.put(a)

    def __len__(self) -> int:
        return len(self._helper_of)

    def docs(self) -> list[dict]:
        return [a for held in self.by_helper.values() for a in held.values()]

    def put(self, a: dict) -> None:
        """A live assignment, new or read again (as it is now: a revived run
        may hold another slot than before it was lost)."""
        helper_id = a["helper_id"]
        held = self.by_helper.setdefault(helper_id, {})
        if a["_id"] not in held:
            self._helper_of[a["_id"]] = helper_id
            self._changed.add(helper_id)
        held[a["_id"]] = a

    def drop(self, assignment_id: str) -> None:
        """An assignment that is live no more (or never was)."""
        helper_id = self._helper_of.pop(assignment_id, None)
        if helper_id is None:
            return
        held = self.by_helper[helper_id]
        del held[assignment_id]
        if not held:
            del self.by_helper[helper_id]
        self._changed.add(helper_id)

    def take_changed(self) -> set[str]:
        """The helpers whose live assignments changed since the last call."""
        changed, self._changed = self._changed, set()
        return changed

    def ids(self, helper_id: str) -> frozenset:
        """The ids of a helper's live assignments."""
        held = self.by_helper.get(helper_id)
        return frozenset(held) if held else NONE_HELD

    def reservations(self, helper_id: str) -> list[dict]:
        """What a helper's live assignments hold there."""
        held = self.by_helper.get(helper_id)
        return [a.get("reservation") or {} for a in held.values()] if held else []

    def of(self, helper_id: str) -> list[dict]:
        """A helper's live assignments."""
        return list((self.by_helper.get(helper_id) or {}).values())
