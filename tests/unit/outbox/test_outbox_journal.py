"""The helper's outbox on disk: its journal files, what a crash, a full
disk or an unreadable line leaves there, and the files of earlier versions."""

from __future__ import annotations

import errno
import json
import os
import threading

import pytest

from helper.outbox import Outbox, waiting
from serving.http import Unreachable

from .outbox_fakes import Handler, journal, outbox


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
