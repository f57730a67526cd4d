"""The helper's durable outbox, driven by flush_once() with fake handlers:
delivery in order, lanes, refusals, restarts."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import pytest

from helper.outbox import Outbox, waiting
from serving.http import ApiError, Unreachable

from .outbox_fakes import Handler, journal, outbox


def test_put_writes_datetimes_as_text(tmp_path, results, events):
    box = outbox(tmp_path, results, events)
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    box.put("result", {"at": when})
    box.flush_once()
    assert results.got == [{"at": str(when)}]


def test_put_of_an_unknown_kind_is_refused(tmp_path, results, events):
    box = outbox(tmp_path, results, events)
    with pytest.raises(ValueError, match="unknown outbox kind"):
        box.put("telegram", {})
    assert box.pending() == 0


def test_flush_delivers_in_order_and_removes(tmp_path, results, events):
    box = outbox(tmp_path, results, events)
    box.put("result", {"n": 1})
    box.put("event", {"n": 2})
    box.put("result", {"n": 3})
    assert box.flush_once() is True
    assert results.got == [{"n": 1}, {"n": 3}] and events.got == [{"n": 2}]
    assert box.pending() == 0
    assert waiting(tmp_path) == []
    assert journal(tmp_path)[-3:] == [{"done": 1}, {"done": 2}, {"done": 3}]


def test_flush_of_an_empty_outbox(tmp_path, results, events):
    assert outbox(tmp_path, results, events).flush_once() is True


def test_unreachable_keeps_the_entry_and_stops(tmp_path, events):
    results = Handler(Unreachable("channel down"))
    box = outbox(tmp_path, results, events)
    box.put("result", {"n": 1})
    box.put("event", {"n": 2})
    assert box.flush_once() is False
    assert events.got == []  # nothing overtakes the stuck entry
    assert box.pending() == 2
    assert box.flush_once() is True
    assert (results.got, events.got) == ([{"n": 1}], [{"n": 2}])


def test_another_lane_is_not_held_up_by_a_stuck_one(tmp_path, events):
    results = Handler(Unreachable("channel down"))
    box = outbox(tmp_path, results, events, lanes={"result": "channel", "event": "seeker"})
    box.put("result", {"n": 1})
    box.put("result", {"n": 2})
    box.put("event", {"n": 3})
    assert box.flush_once() is False
    assert events.got == [{"n": 3}]  # the seeker hears of the end while the channel is down
    assert results.got == []
    assert waiting(tmp_path) == [(1, ["result"]), (2, ["result"])]
    assert box.flush_once() is True
    assert results.got == [{"n": 1}, {"n": 2}]  # in order within the lane


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_a_temporary_refusal_keeps_the_entry(tmp_path, events, status):
    results = Handler(ApiError(status, "try later"))
    box = outbox(tmp_path, results, events)
    box.put("result", {"n": 1})
    box.put("event", {"n": 2})
    assert box.flush_once() is False
    assert waiting(tmp_path) == [(1, ["result"]), (2, ["event"])]
    assert not (tmp_path / "rejected").exists()


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
def test_a_final_refusal_moves_the_entry_to_rejected(tmp_path, events, status):
    results = Handler(ApiError(status, "bad result"))
    box = outbox(tmp_path, results, events)
    box.put("result", {"n": 1})
    box.put("event", {"n": 2})
    assert box.flush_once() is True
    assert events.got == [{"n": 2}]
    assert box.pending() == 0
    rejected = tmp_path / "rejected" / "000000000001-result.json"
    assert json.loads(rejected.read_text()) == {"n": 1}


def test_a_new_outbox_continues_numbering_and_delivers_what_was_left(tmp_path, events):
    down = Handler(Unreachable("channel down"))
    before = outbox(tmp_path, down, events)
    before.put("result", {"n": 1})
    before.put("result", {"n": 2})
    assert before.flush_once() is False
    assert down.got == []

    results = Handler()
    after = outbox(tmp_path, results, events)  # the helper restarted
    assert after.pending() == 2
    assert after.put("result", {"n": 3}) == 3
    assert sorted(p.name for p in tmp_path.glob("journal-*")) == [
        "journal-000000000001.jsonl",
        "journal-000000000003.jsonl",  # each process writes a file of its own
    ]
    assert after.flush_once() is True
    assert results.got == [{"n": 1}, {"n": 2}, {"n": 3}]
    # the earlier process's file went once its records were done with
    assert [p.name for p in tmp_path.glob("journal-*")] == ["journal-000000000003.jsonl"]


def test_rejected_entries_survive_a_restart_and_another_rejection(tmp_path, events):
    first = outbox(tmp_path, Handler(ApiError(422, "bad")), events)
    first.put("result", {"n": 1})
    first.flush_once()
    second = outbox(tmp_path, Handler(ApiError(422, "bad")), events)
    second.put("result", {"n": 2})
    second.flush_once()
    kept = sorted(json.loads(p.read_text())["n"] for p in (tmp_path / "rejected").iterdir())
    assert kept == [1, 2]


def test_an_unexpected_handler_error_keeps_the_entry(tmp_path, events):
    box = outbox(tmp_path, Handler(ValueError("not JSON")), events)
    box.put("result", {"n": 1})
    assert box.flush_once() is False
    assert box.pending() == 1


def test_an_unexpected_handler_error_stops_the_flush_in_order(tmp_path, events):
    results = Handler(RuntimeError("bug"))
    box = outbox(tmp_path, results, events)
    box.put("result", {"n": 1})
    box.put("result", {"n": 2})
    assert box.flush_once() is False
    assert results.got == [] and box.pending() == 2
    assert box.flush_once() is True
    assert results.got == [{"n": 1}, {"n": 2}]


def test_the_sender_thread_delivers_what_is_put(tmp_path):
    delivered = threading.Event()
    got = []

    def deliver(payload):
        got.append(payload)
        delivered.set()

    box = Outbox(tmp_path, {"result": deliver}).start()
    try:
        box.put("result", {"n": 1})
        assert delivered.wait(5)
    finally:
        box.stop()
    assert got == [{"n": 1}]
    assert box.pending() == 0


def test_put_all_writes_one_file_and_delivers_each_entry_in_order(tmp_path, results, events):
    box = outbox(tmp_path, results, events)
    assert box.put_all([("result", {"n": 1}), ("event", {"n": 2})]) == 1
    assert waiting(tmp_path) == [(1, ["result", "event"])]
    assert box.pending() == 2
    assert box.flush_once() is True
    assert (results.got, events.got) == ([{"n": 1}], [{"n": 2}])
    assert waiting(tmp_path) == [] and box.pending() == 0


def test_put_all_of_nothing_or_of_an_unknown_kind_writes_nothing(tmp_path, results, events):
    box = outbox(tmp_path, results, events)
    with pytest.raises(ValueError, match="nothing"):
        box.put_all([])
    with pytest.raises(ValueError, match="unknown outbox kind"):
        box.put_all([("result", {}), ("telegram", {})])
    assert list(tmp_path.iterdir()) == [] and box.pending() == 0


def test_one_lane_of_a_file_goes_on_while_the_other_waits(tmp_path, events):
    results = Handler(Unreachable("channel down"))
    box = outbox(tmp_path, results, events, lanes={"result": "channel", "event": "seeker"})
    box.put_all([("result", {"n": 1}), ("event", {"n": 2})])
    assert box.flush_once() is False
    assert (results.got, events.got) == ([], [{"n": 2}])
    assert box.pending() == 1 and waiting(tmp_path) == [(1, ["result", "event"])]
    assert box.flush_once() is True
    assert (results.got, events.got) == ([{"n": 1}], [{"n": 2}])  # the event once
    assert waiting(tmp_path) == []


def test_an_entry_of_a_file_refused_for_good_is_kept_alone_in_rejected(tmp_path, events):
    box = outbox(tmp_path, Handler(ApiError(422, "bad")), events)
    box.put_all([("result", {"n": 1}), ("event", {"n": 2})])
    assert box.flush_once() is True
    assert events.got == [{"n": 2}]
    assert [p.name for p in (tmp_path / "rejected").iterdir()] == ["000000000001-0-result.json"]
    assert json.loads((tmp_path / "rejected" / "000000000001-0-result.json").read_text()) == {
        "n": 1
    }
    assert waiting(tmp_path) == [] and box.pending() == 0
    again = outbox(tmp_path, Handler(), events)  # numbering goes on past the rejected
    assert again.put("result", {"n": 3}) == 2


def test_a_restarted_outbox_delivers_a_file_again_whole(tmp_path, events):
    """What was delivered before the restart is not known after it: sent
    again (the channel and the seeker take a repeat as the same)."""
    before = outbox(tmp_path, Handler(Unreachable("down")), events, {"result": "c", "event": "s"})
    before.put_all([("result", {"n": 1}), ("event", {"n": 2})])
    before.flush_once()
    assert events.got == [{"n": 2}]
    results, again = Handler(), Handler()
    after = outbox(tmp_path, results, again, {"result": "c", "event": "s"})
    assert after.pending() == 2
    assert after.flush_once() is True
    assert (results.got, again.got) == ([{"n": 1}], [{"n": 2}])
