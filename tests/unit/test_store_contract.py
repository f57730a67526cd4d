"""The channel's ResultStore and the seeker's HelperStore: one contract, every
backend (`mongo_db` is parametrized over mongomock, SecantusDB and MongoDB)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from channel.store import ResultStore
from seeker.store.helpers import FULL_READ, SKEW, HelperStore
from serving.errors import Conflict

DIGEST = "sha256:" + "0" * 64


def result(task_id="t1", helper_id="h1", attempt=1, **fields) -> dict:
    doc = {
        "task_id": task_id,
        "helper_id": helper_id,
        "attempt": attempt,
        "image": "busybox:1.36",
        "status": "succeeded",
        "exit_code": 0,
        "stdout": "hello\n",
        "output_digest": DIGEST,
        "finished_at": datetime(2024, 5, 1, 11, 59, tzinfo=timezone.utc),
        "sent_at": datetime(2024, 5, 1, 11, 59, 30, tzinfo=timezone.utc),
    }
    doc.update(fields)
    return doc


@pytest.fixture
def results(mongo_db) -> ResultStore:
    store = ResultStore(mongo_db)
    store.ensure_indexes()
    return store


class TestResultStore:
    def test_ensure_indexes_creates_the_unique_index_and_is_idempotent(self, mongo_db):
        store = ResultStore(mongo_db)
        store.ensure_indexes()
        store.ensure_indexes()
        info = mongo_db["results"].index_information()
        assert {"one_result_per_attempt", "by_task", "by_result_id"} <= set(info)
        assert info["one_result_per_attempt"].get("unique") is True

    def test_add_stores_a_new_result(self, results, clock):
        doc, created = results.add(result(), received_at=clock())
        assert created is True
        assert "_id" not in doc
        assert doc["received_at"] == clock()
        assert doc["result_id"] == "t1.1"  # <task_id>.<attempt>
        assert results.get(doc["result_id"])["stdout"] == "hello\n"

    def test_add_twice_stores_once_and_overwrites_nothing(self, results, clock):
        first, _ = results.add(result(stdout="first"), received_at=clock())
        later = clock.advance(60)
        again, created = results.add(result(stdout="second"), received_at=later)
        assert created is False
        assert again["result_id"] == first["result_id"]
        assert again["stdout"] == "first"
        assert again["received_at"] == first["received_at"] != later
        assert "_id" not in again
        assert results.results.count_documents({}) == 1

    def test_another_attempt_is_another_result(self, results, clock):
        results.add(result(attempt=1), clock())
        _, created = results.add(result(attempt=2), clock())
        assert created
        assert results.results.count_documents({"task_id": "t1"}) == 2

    def test_another_helpers_result_for_the_same_attempt_is_a_conflict(self, results, clock):
        first, _ = results.add(result(stdout="mine"), clock())
        with pytest.raises(Conflict, match="already has a result from another helper"):
            results.add(result(helper_id="h2", stdout="forged"), clock())
        assert results.get(first["result_id"])["stdout"] == "mine"
        assert results.results.count_documents({"task_id": "t1"}) == 1

    def _fill(self, results, clock, n=5):
        for attempt in range(1, n + 1):
            results.add(result(attempt=attempt), clock())
            clock.advance(1)
        results.add(result(task_id="other"), clock())

    def test_for_task_pages_oldest_first(self, results, clock):
        self._fill(results, clock)
        pages, after = [], None
        while True:
            page, after = results.for_task("t1", limit=2, after=after)
            pages.append([r["attempt"] for r in page])
            if after is None:
                break
        assert pages == [[1, 2], [3, 4], [5]]

    def test_for_task_pages_newest_first(self, results, clock):
        self._fill(results, clock)
        page, after = results.for_task("t1", limit=2, newest_first=True)
        assert [r["attempt"] for r in page] == [5, 4]
        page, after = results.for_task("t1", limit=2, after=after, newest_first=True)
        assert [r["attempt"] for r in page] == [3, 2]
        page, after = results.for_task("t1", limit=2, after=after, newest_first=True)
        assert [r["attempt"] for r in page] == [1]
        assert after is None

    def test_for_task_exact_page_has_no_next_cursor(self, results, clock):
        self._fill(results, clock, n=2)
        page, after = results.for_task("t1", limit=2)
        assert len(page) == 2 and after is None
        assert all("_id" not in r for r in page)

    def test_for_task_of_unknown_task_is_empty(self, results):
        assert results.for_task("nobody") == ([], None)

    @pytest.mark.parametrize("cursor", ["not-a-cursor", "0" * 23, "zz" * 12])
    def test_for_task_bad_cursor_raises_value_error(self, results, cursor):
        with pytest.raises(ValueError):
            results.for_task("t1", after=cursor)

    def test_get_unknown_result_is_none(self, results, clock):
        results.add(result(), clock())
        assert results.get("f" * 24) is None


def registration(helper_id="h1", name="gpu-1", **fields) -> dict:
    reg = {
        "helper_id": helper_id,
        "name": name,
        "url": "http://10.0.0.1:7072",
        "slots": 2,
        "resources": {"cpus": 8, "memory_available": 16 * 1024**3, "gpus": []},
        "labels": {"zone": "a"},
    }
    reg.update(fields)
    return reg


@pytest.fixture
def helpers(mongo_db) -> HelperStore:
    store = HelperStore(mongo_db)
    store.ensure_indexes()
    return store


class TestHelperStore:
    def test_register_inserts(self, helpers, clock):
        doc = helpers.register(registration(), clock())
        assert doc["helper_id"] == "h1" and "_id" not in doc
        assert doc["registered_at"] == doc["last_seen"] == clock()
        assert doc["failures"] == 0
        assert helpers.get("h1")["url"] == "http://10.0.0.1:7072"

    def test_register_again_refreshes_and_keeps_registered_at(self, helpers, clock):
        first = clock()
        helpers.register(registration(), first)
        later = clock.advance(30)
        doc = helpers.register(registration(url="http://10.0.0.9:7072", slots=4), later)
        assert doc["registered_at"] == first
        assert doc["last_seen"] == doc["updated_at"] == later
        assert (doc["url"], doc["slots"]) == ("http://10.0.0.9:7072", 4)
        assert len(helpers.list()) == 1

    def test_name_held_by_another_helper_is_a_conflict(self, helpers, clock):
        helpers.register(registration("h1", "gpu-1"), clock())
        with pytest.raises(Conflict) as info:
            helpers.register(registration("h2", "gpu-1"), clock())
        assert "h1" in info.value.message
        assert helpers.get("h2") is None

    def test_contact_failed_counts_up_and_contact_ok_resets(self, helpers, clock):
        helpers.register(registration(), clock())
        counts = [helpers.contact_failed("h1", clock(), f"refused {i}") for i in range(3)]
        assert counts == [1, 2, 3]
        assert helpers.get("h1")["last_failure"] == {"at": clock(), "reason": "refused 2"}
        helpers.contact_ok("h1", clock.advance(5))
        doc = helpers.get("h1")
        assert doc["failures"] == 0 and doc["last_seen"] == clock()
        assert helpers.contact_failed("h1", clock(), "again") == 1

    def test_register_resets_failures(self, helpers, clock):
        helpers.register(registration(), clock())
        helpers.contact_failed("h1", clock(), "refused")
        assert helpers.register(registration(), clock())["failures"] == 0

    def test_contact_failed_for_unknown_helper_is_none(self, helpers, clock):
        assert helpers.contact_failed("ghost", clock(), "refused") is None
        assert helpers.get("ghost") is None

    def test_refresh_replaces_resources_and_resets_failures(self, helpers, clock):
        helpers.register(registration(), clock())
        helpers.contact_failed("h1", clock(), "refused")
        fresh = {"cpus": 16, "memory_total": 64 * 1024**3, "gpus": [{"index": 0}]}
        doc = helpers.refresh("h1", fresh, clock.advance(10))
        assert doc["resources"] == fresh
        assert doc["failures"] == 0
        assert doc["last_seen"] == doc["updated_at"] == clock()
        assert helpers.get("h1")["labels"] == {"zone": "a"}  # the rest is kept
        assert helpers.refresh("ghost", fresh, clock()) is None
        assert helpers.get("ghost") is None

    def test_register_keeps_boot_id_and_running(self, helpers, clock):
        helpers.register(registration(boot_id="b1", running=["t1.1"]), clock())
        doc = helpers.get("h1")
        assert (doc["boot_id"], doc["running"]) == ("b1", ["t1.1"])

    def test_remove(self, helpers, clock):
        helpers.register(registration(), clock())
        assert helpers.remove("h1") is True
        assert helpers.get("h1") is None
        assert helpers.remove("h1") is False

    def test_removed_name_can_be_taken_by_another_helper(self, helpers, clock):
        helpers.register(registration("h1", "gpu-1"), clock())
        helpers.remove("h1")
        assert helpers.register(registration("h2", "gpu-1"), clock())["helper_id"] == "h2"

    def test_list_is_sorted_by_name(self, helpers, clock):
        for hid, name in (("h1", "zeta"), ("h2", "alpha"), ("h3", "mid")):
            helpers.register(registration(hid, name), clock())
        assert [h["name"] for h in helpers.list()] == ["alpha", "mid", "zeta"]


@pytest.fixture
def followed(mongo_db, clock) -> HelperStore:
    store = HelperStore(mongo_db, clock).follow()
    store.ensure_indexes()
    return store


class TestFollowedRegistry:
    """registry() where the process follows the registry: the documents
    changed since the last read (and SKEW before it), the whole of it every
    FULL_READ; each helper's document as list() gives it, in name order."""

    def test_not_followed_reads_every_document_each_time(self, helpers, clock):
        helpers.register(registration("h1", "gpu-1"), clock())
        helpers.registry()
        helpers.helpers.update_one({"_id": "h1"}, {"$set": {"slots": 9}})  # no changed_at
        assert helpers.registry()["h1"]["slots"] == 9

    def test_a_change_written_here_is_read_and_others_wait_for_the_whole_read(
        self, followed, clock
    ):
        followed.register(registration("h1", "gpu-1"), clock())
        followed.register(registration("h2", "gpu-2"), clock())
        assert list(followed.registry()) == ["h1", "h2"]
        clock.advance(SKEW.total_seconds() + 1)
        followed.registry()  # the registrations are older than the window now
        # a write that leaves changed_at alone is not news until the whole read
        followed.helpers.update_one({"_id": "h2"}, {"$set": {"slots": 9}})
        clock.advance(1)
        followed.contact_failed("h1", clock(), "refused")
        read = followed.registry()
        assert read["h1"]["failures"] == 1 and read["h2"]["slots"] == 2
        clock.advance(FULL_READ.total_seconds())
        assert followed.registry()["h2"]["slots"] == 9

    def test_a_write_in_flight_during_the_last_read_is_not_missed(self, followed, clock):
        followed.register(registration("h1", "gpu-1"), clock())
        followed.registry()
        written_at = clock()  # stamped before the read below, landing after it
        clock.advance(2)
        followed.registry()
        clock.advance(1)
        followed.poll_gone("h1", written_at)
        assert followed.registry()["h1"]["poll"]["gone_at"] == written_at

    def test_a_document_read_again_as_it_was_is_the_same_object(self, followed, clock):
        """A placement pass builds again the views of the helpers whose
        document is another object (KeptViews): one read again within the
        window, or by the whole read, but unchanged, is not another."""
        followed.register(registration("h1", "gpu-1"), clock())
        followed.register(registration("h2", "gpu-2"), clock())
        first = followed.registry()
        clock.advance(1)
        followed.contact_failed("h2", clock(), "refused")
        again = followed.registry()  # both within the window: read again
        assert again["h1"] is first["h1"]
        assert again["h2"] is not first["h2"] and again["h2"]["failures"] == 1
        clock.advance(FULL_READ.total_seconds())
        whole = followed.registry()
        assert whole["h1"] is first["h1"] and whole["h2"] is again["h2"]

    def test_a_new_helper_takes_its_place_by_name(self, followed, clock):
        followed.register(registration("h2", "gpu-2"), clock())
        followed.registry()
        clock.advance(1)
        followed.register(registration("h1", "gpu-1"), clock())
        assert [h["name"] for h in followed.registry().values()] == ["gpu-1", "gpu-2"]

    def test_a_helper_removed_or_forgotten_leaves_at_once(self, followed, clock):
        for i in (1, 2, 3):
            followed.register(registration(f"h{i}", f"gpu-{i}"), clock())
        followed.registry()
        followed.remove("h1")
        followed.contact_failed("h2", clock(), "refused")
        followed.purge("h2", 1)
        followed.helpers.delete_one({"_id": "h3"})  # another seeker: the change feed tells
        followed.forget("h3")
        assert followed.registry() == {}

    def test_contacts_and_heartbeat_intervals_wait_for_the_whole_read(self, followed, clock):
        followed.register(registration("h1", "gpu-1"), clock())
        followed.register(registration("h2", "gpu-2"), clock())
        followed.registry()
        clock.advance(SKEW.total_seconds() + 1)
        followed.registry()
        heard = clock.advance(1)
        followed.seen(["h1", "h2"], heard, intervals={"h2": 30.0})
        followed.set_heartbeat("h1", 20.0)
        read = followed.registry()
        assert read["h1"]["last_seen"] != heard and "heartbeat" not in read["h2"]
        clock.advance(FULL_READ.total_seconds())
        read = followed.registry()
        assert (read["h1"]["heartbeat"], read["h2"]["heartbeat"]) == (20.0, 30.0)
        assert read["h2"]["last_seen"] == heard
