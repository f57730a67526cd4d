"""KeptViews over many passes: the fleet it keeps, changed in place, is at
every pass the fleet a fresh helper_views() builds of the same documents,
assignments and time, whatever happened between (documents read again,
assignments made and ended, helpers joining, leaving and going offline, the
last pass's placements, another order, another liveness, a clock gone back)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from test_capacity import LIVENESS, NOW, doc

from seeker.placement.capacity import KeptViews, after_placing, helper_views
from seeker.placement.live import LiveSet


def same_fleet(kept, fresh) -> None:
    assert list(kept) == list(fresh)
    assert [kept[k] for k in kept] == [fresh[k] for k in fresh]
    assert kept.rows() == fresh.rows()
    assert kept.names_are_unique == fresh.names_are_unique
    assert kept.prefetching == fresh.prefetching


ACTIONS = {
    "read": 3,
    "beat": 3,
    "assign": 3,
    "end": 2,
    "time": 4,
    "gone": 1,
    "join": 0.3,
    "leave": 0.3,
    "order": 0.3,
    "other_liveness": 0.2,
    "back": 0.2,
}


class World:
    """Documents, live assignments and a clock, changed at random."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.now = NOW
        self.liveness = LIVENESS
        self.serial = 0
        self.docs = [self.new_doc() for _ in range(rng.randint(0, 12))]
        self.live: list[dict] = []

    def new_doc(self) -> dict:
        self.serial += 1
        seen = self.now - timedelta(seconds=self.rng.randint(0, 60))
        name = f"gpu-{self.rng.randint(1, 8)}"  # sometimes shared
        return doc(
            f"h{self.serial}",
            name,
            last_seen=seen,
            slots=self.rng.randint(1, 4),
            prefetch=self.rng.choice([0, 0, 0, 2]),
        )

    def step(self) -> None:
        # mostly what a pass sees in place; now and then what builds it all again
        action = self.rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
        getattr(self, action)()

    def read(self) -> None:  # the registry read a document again
        if self.docs:
            i = self.rng.randrange(len(self.docs))
            seen = self.now - timedelta(seconds=self.rng.randint(0, 50))
            self.docs[i] = {
                **self.docs[i],
                "last_seen": seen,
                "slots": self.rng.randint(1, 4),
                "prefetch": self.rng.choice([0, 0, 2]),
            }

    def beat(self) -> None:  # a contact: only last_seen and the interval change
        if self.docs:
            i = self.rng.randrange(len(self.docs))
            seen = self.now - timedelta(seconds=self.rng.randint(0, 50))
            beat = self.rng.choice([0, 15, 40])
            self.docs[i] = {**self.docs[i], "last_seen": seen, "heartbeat": beat}

    def assign(self) -> None:
        if self.docs:
            h = self.rng.choice(self.docs)
            self.serial += 1
            self.live.append(
                {
                    "_id": f"t{self.serial}.1",
                    "helper_id": h["helper_id"],
                    "reservation": {"cpus": self.rng.randint(0, 2)},
                }
            )

    def end(self) -> None:
        if self.live:
            self.live.pop(self.rng.randrange(len(self.live)))

    def time(self) -> None:
        self.now += timedelta(seconds=self.rng.choice([0, 1, 5, 20, 40]))

    def gone(self) -> None:  # an assignment of a helper no longer registered
        self.serial += 1
        self.live.append({"_id": f"t{self.serial}.1", "helper_id": "gone"})

    def join(self) -> None:
        self.docs.insert(self.rng.randint(0, len(self.docs)), self.new_doc())

    def leave(self) -> None:
        if self.docs:
            self.docs.pop(self.rng.randrange(len(self.docs)))

    def order(self) -> None:
        if len(self.docs) > 1:
            i, j = self.rng.sample(range(len(self.docs)), 2)
            self.docs[i], self.docs[j] = self.docs[j], self.docs[i]

    def other_liveness(self) -> None:
        self.liveness = self.rng.choice([LIVENESS, 2 * LIVENESS])

    def back(self) -> None:
        self.now -= timedelta(seconds=self.rng.choice([1, 30]))


def followed(live: LiveSet | None, now: list[dict], rng: random.Random) -> LiveSet:
    """The live assignments as a store that follows them has them: brought
    up to date by what changed (the rest of the time), or read whole."""
    if live is None or rng.random() < 0.1:
        return LiveSet(now)
    ids = {a["_id"] for a in now}
    for a in live.docs():
        if a["_id"] not in ids:
            live.drop(a["_id"])
    for a in now:
        live.put(a)
    return live


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("follow", [False, True], ids=["lists", "followed"])
def test_kept_views_equal_a_fresh_fleet_at_every_pass(seed, follow):
    rng = random.Random(seed)
    world, kept, live = World(rng), KeptViews(), None
    for _ in range(60):
        for _ in range(rng.randint(0, 3)):
            world.step()
        live = followed(live, world.live, rng) if follow else world.live
        fleet = kept.fleet(world.docs, live, world.now, world.liveness)
        same_fleet(fleet, helper_views(world.docs, world.live, world.now, world.liveness))
        # the pass places, or drops a helper it purged: undone at the next
        for _ in range(rng.randint(0, 2)):
            if not len(fleet):
                break
            helper_id = rng.choice(list(fleet))
            if rng.random() < 0.8:
                fleet[helper_id] = after_placing(fleet[helper_id], {"cpus": 1})
            else:
                del fleet[helper_id]


def test_a_pass_with_nothing_changed_builds_no_row_and_keeps_the_fleet():
    kept = KeptViews()
    docs = [doc("h1", "gpu-1"), doc("h2", "gpu-2")]
    live = [{"_id": "t.1", "helper_id": "h2", "reservation": {"cpus": 1}}]
    first = kept.fleet(docs, live, NOW, LIVENESS)
    rows = first.rows()
    second = kept.fleet(docs, list(live), NOW + timedelta(seconds=1), LIVENESS)
    assert second is first
    assert all(a is b for a, b in zip(second.rows(), rows, strict=True))


def test_a_contact_keeps_the_row_unless_the_helper_goes_online_or_offline():
    """A document read again after contacts (a heartbeat's `last_seen`, a new
    interval) keeps its row while the helper is as online as it was; another
    change of the document, or one that takes it offline, builds it again."""
    kept = KeptViews()
    h1, h2 = doc("h1", "gpu-1"), doc("h2", "gpu-2")
    first = kept.fleet([h1, h2], [], NOW, LIVENESS)
    rows = {r.helper_id: r for r in first.rows()}
    later = NOW + timedelta(seconds=10)
    beat = {**h1, "last_seen": later, "heartbeat": 15}
    failed = {**h2, "failures": 2}
    second = kept.fleet([beat, failed], [], later, LIVENESS)
    assert second.row("h1") is rows["h1"]
    assert second.row("h2") is not rows["h2"] and second["h2"].failures == 2
    stale = {**beat, "last_seen": NOW - 2 * LIVENESS}  # a stale copy: offline now
    third = kept.fleet([stale, failed], [], later, LIVENESS)
    assert not third["h1"].online
    same_fleet(third, helper_views([stale, failed], [], later, LIVENESS))


def test_a_helper_goes_offline_at_its_deadline_though_its_document_is_the_same():
    """The documents of the last pass, unchanged: each helper goes offline
    at its own deadline, the others keep their rows, and a heartbeat that
    moved the first deadline on leaves nobody offline early."""
    kept = KeptViews()
    h1 = doc("h1", "gpu-1", last_seen=NOW)
    h2 = doc("h2", "gpu-2", last_seen=NOW + timedelta(seconds=10))
    first = kept.fleet([h1, h2], [], NOW, LIVENESS)
    rows = {r.helper_id: r for r in first.rows()}
    # h1 beats: its deadline moves past h2's
    beat = {**h1, "last_seen": NOW + timedelta(seconds=30)}
    kept.fleet([beat, h2], [], NOW + timedelta(seconds=30), LIVENESS)
    # past h1's first deadline, before h2's: nobody goes offline
    at = NOW + LIVENESS + timedelta(seconds=5)
    second = kept.fleet([beat, h2], [], at, LIVENESS)
    assert second["h1"].online and second["h2"].online
    assert second.row("h2") is rows["h2"] and second.row("h1") is rows["h1"]
    # past h2's deadline: h2 goes offline, h1 keeps its row
    at = NOW + LIVENESS + timedelta(seconds=11)
    third = kept.fleet([beat, h2], [], at, LIVENESS)
    assert not third["h2"].online and third["h1"].online
    assert third.row("h1") is rows["h1"]
    same_fleet(third, helper_views([beat, h2], [], at, LIVENESS))
    # past h1's: both offline
    at = NOW + timedelta(seconds=30) + LIVENESS + timedelta(seconds=1)
    fourth = kept.fleet([beat, h2], [], at, LIVENESS)
    assert not fourth["h1"].online and not fourth["h2"].online
    same_fleet(fourth, helper_views([beat, h2], [], at, LIVENESS))


def test_a_live_set_tells_the_helpers_whose_assignments_changed_since_it_was_asked():
    live = LiveSet([{"_id": "a.1", "helper_id": "h1"}, {"_id": "b.1", "helper_id": "h2"}])
    assert live.take_changed() == {"h1", "h2"} and live.take_changed() == set()
    live.put({"_id": "a.1", "helper_id": "h1", "slot": "h1/1"})  # read again: no news
    live.drop("x.1")  # not live here
    assert live.take_changed() == set() and live.of("h1")[0]["slot"] == "h1/1"
    live.put({"_id": "c.1", "helper_id": "h2", "reservation": {"cpus": 2}})
    live.drop("a.1")
    assert live.take_changed() == {"h1", "h2"}
    assert (len(live), live.ids("h1"), live.ids("h2")) == (2, frozenset(), {"b.1", "c.1"})
    assert live.reservations("h2") == [{}, {"cpus": 2}] and "h1" not in live.by_helper


def test_a_pass_given_the_kept_live_set_looks_only_at_the_helpers_it_names(monkeypatch):
    """The store's LiveSet, the same object as at the last pass: only the
    helpers whose live assignments it saw change are compared."""
    kept = KeptViews()
    docs = [doc(f"h{i}", f"gpu-{i}") for i in range(4)]
    live = LiveSet([{"_id": f"t{i}.1", "helper_id": f"h{i}"} for i in range(4)])
    kept.fleet(docs, live, NOW, LIVENESS)
    asked: list[str] = []
    ids = live.ids
    monkeypatch.setattr(live, "ids", lambda helper_id: asked.append(helper_id) or ids(helper_id))
    live.drop("t2.1")
    fleet = kept.fleet(docs, live, NOW, LIVENESS)
    assert asked[0] == "h2" and set(asked) == {"h2"}  # compared, then built again
    assert (fleet["h2"].running, fleet["h1"].running) == (0, 1)
