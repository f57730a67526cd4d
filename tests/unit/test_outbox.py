"""The helper's durable outbox, driven by flush_once() with fake handlers."""

from __future__ import annotations

import errno
import json
import os
import threading
from datetime import datetime, timezone

import pytest

from helper.outbox import Outbox, waiting
from serving.http import ApiError, Unreachable


class Handler:
    """Delivers by appending to `got`; raises the queued errors first, one per call."""

    def __init__(self, *errors: Exception):
        self.got: list[dict] = []
        self.errors = list(errors)

    def __call__(self, payload: dict) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.got.append(payload)


@pytest.fixture
def results() -> Handler:
    return Handler()


@pytest.fixture
def events() -> Handler:
    return Handler()


def outbox(directory, results, events, lanes=None) -> Outbox:
    """Results and events in one lane (in order) unless `lanes` says otherwise."""
    lanes = lanes or {"result": "one", "event": "one"}
    return Outbox(directory, {"result": results, "event": events}, lanes=lanes)


def journal(directory) -> list[dict]:
    """Every line of the journal files, in order."""
    return [
        json.loads(line)
        for path in sorted(directory.glob("journal-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_put_appends_numbered_records_to_one_journal_file(tmp_path, results, events):
    box = outbox(tmp_path, results, events)
    assert box.put("result", {"n": 1}) == 1
    assert box.put("event", {"n": 2}) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["journal-000000000001.jsonl"]
    assert journal(tmp_path) == [
        {"seq": 1, "entries": [{"kind": "result", "payload": {"n": 1}}]},
        {"seq": 2, "entries": [{"kind": "event", "payload": {"n": 2}}]},
    ]
    assert waiting(tmp_path) == [(1, ["result"]), (2, ["event"])]
    assert box.pending() == 2


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


def test_an_earlier_versions_files_are_taken_into_the_journal(tmp_path, results, events):
    """The outbox before the journal wrote a file per record: a helper
    upgraded with some waiting delivers them, and one that is not JSON is
    kept in rejected/ as it was."""
    (tmp_path / "000000000001-result.json").write_text('{"n": 1}')
    (tmp_path / "000000000002-result.json").write_text("{cut short by a crash")
    (tmp_path / "000000000003-result+event.json").write_text(
        json.dumps(
            {
                "entries": [
                    {"kind": "result", "payload": {"n": 2}},
                    {"kind": "event", "payload": {"n": 3}},
                ]
            }
        )
    )
    box = outbox(tmp_path, results, events)
    assert list(tmp_path.glob("*.json")) == []
    assert waiting(tmp_path) == [(4, ["result"]), (5, ["result", "event"])]
    assert box.put("result", {"n": 4}) == 6  # numbered past every file, kept or rejected
    assert box.flush_once() is True
    assert (results.got, events.got) == ([{"n": 1}, {"n": 2}, {"n": 4}], [{"n": 3}])
    assert [p.name for p in (tmp_path / "rejected").iterdir()] == ["000000000002-result.json"]
    assert box.pending() == 0


def stuck_with_one_record(tmp_path, events, then: str):
    """An outbox whose channel is down, holding record 1, and its journal
    file, with `then` written after the record."""
    box = outbox(tmp_path, Handler(Unreachable("down")), events)
    box.put("result", {"n": 1})
    box.flush_once()
    (path,) = tmp_path.glob("journal-*")
    with open(path, "a") as f:
        f.write(then)
    return box, path


def test_a_record_half_written_by_a_crash_is_cut_off(tmp_path, results, events):
    """A crash during a put (which never returned) leaves its line
    unended: the restarted outbox cuts it off and delivers the rest."""
    _, path = stuck_with_one_record(tmp_path, events, '{"seq": 2, "entries": [{"kind": "res')
    again = outbox(tmp_path, results, events)
    assert path.read_text().endswith('"payload": {"n": 1}}]}\n')
    assert again.pending() == 1 and again.flush_once() is True
    assert results.got == [{"n": 1}]
    assert list(tmp_path.glob("journal-*")) == []  # done with, and not written to: gone


def test_a_line_that_cannot_be_read_is_kept_in_rejected(tmp_path, results, events):
    box, _ = stuck_with_one_record(tmp_path, events, '{"seq": 2, "entries": "garbled"}\n[1]\n')
    box.put("result", {"n": 3})
    assert waiting(tmp_path) == [(1, ["result"]), (2, ["result"])]  # a look passes them over
    again = outbox(tmp_path, results, events)
    assert again.flush_once() is True
    assert results.got == [{"n": 1}, {"n": 3}]
    kept = sorted(p.name for p in (tmp_path / "rejected").iterdir())
    assert kept == ["journal-000000000001-line-2.txt", "journal-000000000001-line-3.txt"]


def test_a_full_journal_file_goes_once_its_records_are_done(tmp_path, results, events, monkeypatch):
    monkeypatch.setattr("helper.outbox.SEGMENT_BYTES", 200)
    late = Handler(Unreachable("down"))
    box = outbox(tmp_path, late, events)
    for n in range(6):
        box.put("result", {"n": n, "pad": "x" * 60})
    files = sorted(p.name for p in tmp_path.glob("journal-*"))
    assert len(files) == 3  # two records a file
    assert box.flush_once() is False
    assert box.flush_once() is True
    assert [p.name for p in tmp_path.glob("journal-*")] == [files[-1]]  # the one written to
    assert [r["n"] for r in late.got] == list(range(6)) and box.pending() == 0


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


def test_a_file_of_several_entries_that_cannot_be_read_is_rejected(tmp_path, results, events):
    (tmp_path / "000000000001-result+event.json").write_text('{"entries": [{"kind": "result"}]}')
    (tmp_path / "000000000002-result+event.json").write_text(
        json.dumps(
            {"entries": [{"kind": "event", "payload": {}}, {"kind": "result", "payload": {}}]}
        )
    )
    box = outbox(tmp_path, results, events)
    assert box.pending() == 0
    assert sorted(p.name for p in (tmp_path / "rejected").iterdir()) == [
        "000000000001-result+event.json",
        "000000000002-result+event.json",
    ]


def test_puts_from_many_threads_across_journal_files_are_each_delivered_once(tmp_path, monkeypatch):
    """Runs end on threads of their own while the sender delivers and the
    full journal files go: every record is delivered once, and an outbox
    started afterwards finds none left."""
    monkeypatch.setattr("helper.outbox.SEGMENT_BYTES", 2_000)
    got, lock, all_in = [], threading.Lock(), threading.Event()

    def deliver(payload):
        with lock:
            got.append(payload["n"])
            if len(got) == 400:
                all_in.set()

    box = Outbox(tmp_path, {"result": deliver}).start()

    def put(t):
        for i in range(50):
            box.put("result", {"n": t * 50 + i})

    threads = [threading.Thread(target=put, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert all_in.wait(10)
    finally:
        box.stop()
    assert sorted(got) == list(range(400))
    assert box.pending() == 0 and waiting(tmp_path) == []
    assert len(list(tmp_path.glob("journal-*"))) == 1  # the full ones went
    assert Outbox(tmp_path, {"result": deliver}).pending() == 0


def test_a_put_that_fails_leaves_no_half_line_and_the_next_starts_a_file(
    tmp_path, results, events, monkeypatch
):
    """A full disk fails a put (the run's end is then not written, as
    before); the journal keeps no part of it, and what comes after it is
    written and read back whole."""
    box = outbox(tmp_path, results, events)
    box.put("result", {"n": 1})
    fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("helper.outbox.os.fsync", full)
    with pytest.raises(OSError, match="No space"):
        box.put("result", {"n": 2})
    monkeypatch.setattr("helper.outbox.os.fsync", fsync)
    assert box.put("result", {"n": 3}) == 3
    assert sorted(p.name for p in tmp_path.glob("journal-*")) == [
        "journal-000000000001.jsonl",
        "journal-000000000003.jsonl",
    ]
    assert box.pending() == 2 and waiting(tmp_path) == [(1, ["result"]), (3, ["result"])]
    assert box.flush_once() is True
    assert results.got == [{"n": 1}, {"n": 3}]
    assert Outbox(tmp_path, {"result": results, "event": events}).pending() == 0
