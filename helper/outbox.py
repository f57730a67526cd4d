"""A durable outbox: what the helper must deliver (results to the channel,
final events to the seeker) is written to disk first, then sent in order and
retried with backoff until acknowledged, across restarts.

The outbox is a journal: append-only files (`journal-<first number>.jsonl`)
of one line per record, a record being one entry (`put`) or the entries of
one finished run (`put_all`: its artifacts, result and final event). A
record is appended and fsynced in one write; once every entry of it is
done with, a line saying so (`{"done": n}`) is appended to its file, not
fsynced (lost in a crash, the record is sent again, which the channel and
the seeker take as the same). A journal file is removed once it is neither
the one being written nor holds a record not done. Appending to a file that
exists costs a write and an fsync; a file per record also cost its create,
rename and removal (bench/findings.md 41).

The files are the truth across restarts; while the process runs, what it
wrote is also kept in memory, so a delivery reads nothing back. A restarted
outbox reads every journal file, cuts off a last line a crash left half
written, and starts a file of its own; the one-file-per-record outbox of
earlier versions (`000000000042-result+event.json`) is taken into it."""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from serving.http import ApiError, Unreachable
from serving.worker import Worker

log = logging.getLogger(__name__)

Deliver = Callable[[dict], None]
Entry = tuple[str, dict]  # (kind, payload)
JOIN = "+"  # between the kinds in the name of an earlier version's file of several
JOURNAL = "journal-*.jsonl"
# bytes after which the next record starts a new journal file (the full one
# goes once its records are done with)
SEGMENT_BYTES = 4 * 1024 * 1024


@dataclass(eq=False)
class _Segment:
    path: Path
    fd: int | None = None  # open for appending while it is written to or marked
    records: int = 0  # records in it not done with
    size: int = 0


@dataclass(eq=False)
class _Record:
    seq: int
    entries: list[Entry]
    segment: _Segment
    done: set[int] = field(default_factory=set)  # entries done with, this process


class Outbox:
    def __init__(
        self,
        directory: Path,
        handlers: dict[str, Deliver],
        max_backoff: float = 30.0,
        lanes: dict[str, str] | None = None,
    ):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rejected_dir = self.dir / "rejected"
        self.handlers = handlers
        # kinds in one lane are delivered in order and wait for each other;
        # lanes (one per destination) do not wait for each other
        self.lanes = lanes or {}
        self._write = threading.Lock()  # appends and journal files; taken before _lock
        self._lock = threading.Lock()  # the records
        self._records: dict[int, _Record] = {}
        self._current: _Segment | None = None  # made at the first put
        last = self._load()
        self._seq = itertools.count(last + 1)
        self._take_legacy()
        self._sender = Worker("outbox", self.flush_once, 0.5, max_backoff)

    def put(self, kind: str, payload: dict) -> int:
        """Write one entry durably and wake the sender; returns its number."""
        return self.put_all([(kind, payload)])

    def put_all(self, entries: Iterable[Entry]) -> int:
        """Write entries as one record, durably (one write, one fsync), and
        wake the sender; returns the record's number. They are delivered in
        this order within each lane; each is acknowledged on its own."""
        entries = list(entries)
        if not entries:
            raise ValueError("nothing to put in the outbox")
        for kind, _ in entries:
            if kind not in self.handlers:
                raise ValueError(f"unknown outbox kind {kind!r}")
        seq = self._append(entries)
        self._sender.wake()
        return seq

    def pending(self) -> int:
        """Entries not delivered yet."""
        with self._lock:
            return sum(len(r.entries) - len(r.done) for r in self._records.values())

    def start(self) -> Outbox:
        self._sender.start()
        return self

    def stop(self) -> None:
        self._sender.stop()

    def flush_once(self) -> bool:
        """Deliver entries in order, each lane until one of its entries fails;
        True when none is left."""
        blocked: set[str] = set()
        with self._lock:
            records = [self._records[seq] for seq in sorted(self._records)]
        for record in records:
            with self._lock:
                done = set(record.done)
            for i, (kind, payload) in enumerate(record.entries):
                lane = self.lanes.get(kind, kind)
                if i in done or lane in blocked:
                    continue
                if self._deliver(record, i, kind, payload):
                    done.add(i)
                else:
                    blocked.add(lane)
            self._settle(record, done)
        return not blocked

    # --- the journal -----------------------------------------------------------

    def _append(self, entries: list[Entry]) -> int:
        with self._write:
            seq = next(self._seq)
            record = {"seq": seq, "entries": [{"kind": k, "payload": p} for k, p in entries]}
            line = (json.dumps(record, default=str) + "\n").encode()
            segment = self._segment_for(seq)
            self._write_line(segment, line, sync=True)
            # what a delivery hands on is what a restarted helper would read back
            kept = _entries_of(json.loads(line))
            with self._lock:
                self._records[seq] = _Record(seq, kept, segment)
                segment.records += 1
        return seq

    def _segment_for(self, seq: int) -> _Segment:
        """The journal file to append to (holding `_write`): a new one at
        the first record, and once the current one is full."""
        current = self._current
        if current is not None and current.size < SEGMENT_BYTES:
            return current
        path = self.dir / f"journal-{seq:012d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        _sync_dir(self.dir)  # the new file's name is as durable as what goes in it
        self._current = _Segment(path, fd)
        if current is not None:
            with self._lock:
                drained = current.records == 0
            if drained:
                _remove(current)
        return self._current

    def _settle(self, record: _Record, done: set[int]) -> None:
        """Mark the record done once every entry of it is; its journal file
        goes instead once no other record in it is left, unless it is the
        file being written to."""
        if len(done) < len(record.entries):
            with self._lock:
                record.done = done
            return
        segment = record.segment
        with self._write:
            with self._lock:
                self._records.pop(record.seq, None)
                segment.records -= 1
                drained = segment.records == 0 and segment is not self._current
            if drained:
                _remove(segment)
                return
            if segment.fd is None:  # a file left by an earlier process
                segment.fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND)
                segment.size = os.fstat(segment.fd).st_size
            self._write_line(segment, b'{"done": %d}\n' % record.seq, sync=False)

    def _write_line(self, segment: _Segment, line: bytes, sync: bool) -> None:
        """Append one line (holding `_write`). One that fails (a full disk)
        is cut off again, so that no later line is glued to half of it, and
        the next record starts a file of its own."""
        try:
            if os.write(segment.fd, line) != len(line):
                raise OSError(errno.ENOSPC, "the line was written in part")
            if sync:
                os.fsync(segment.fd)
        except OSError:
            if segment is self._current:
                self._current = None
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, segment.size)
            raise
        segment.size += len(line)

    def _load(self) -> int:
        """The records an earlier process left not done; returns the highest
        number used."""
        last = 0
        for path in sorted(self.dir.glob(JOURNAL)):
            segment = _Segment(path)
            records, done, last_seq = self._read(path)
            last = max(last, last_seq)
            for seq, entries in records.items():
                if seq not in done:
                    self._records[seq] = _Record(seq, entries, segment)
                    segment.records += 1
            if segment.records == 0:
                path.unlink(missing_ok=True)
        # rejected/ and an earlier version's files are named by their numbers
        named = [*self.rejected_dir.glob("*.json"), *self.dir.glob("*.json")]
        return max([last, *(int(p.name.split("-", 1)[0]) for p in named)])

    def _read(self, path: Path) -> tuple[dict[int, list[Entry]], set[int], int]:
        """One journal file's records, the numbers marked done, and the
        highest number in it. A last line without its end (a crash during
        its write, which never returned) is cut off; a line that cannot be
        read is kept in rejected/ and passed over."""
        data = path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("outbox: %s ends in a half-written record; cut off", path.name)
            os.truncate(path, end)
        records, done, unread = _parse(data[:end])
        for n, (line, exc) in unread.items():
            name = f"{path.stem}-line-{n}.txt"
            log.error(
                "outbox: %s line %d cannot be read (%s); kept in rejected/%s",
                path.name,
                n,
                exc,
                name,
            )
            self.rejected_dir.mkdir(exist_ok=True)
            (self.rejected_dir / name).write_bytes(line)
        return records, done, max([*records, *done], default=0)

    def _take_legacy(self) -> None:
        """Files of the outbox before the journal (one per record, named by
        number and kinds): appended to the journal in their order, then
        removed. One that cannot be read goes to rejected/ as it is."""
        for path in sorted(self.dir.glob("*.json")):
            kinds = path.stem.split("-", 1)[1].split(JOIN)
            try:
                content = json.loads(path.read_text())
                if len(kinds) == 1:
                    entries = [(kinds[0], content)]
                else:
                    entries = _entries_of(content)
                    if [kind for kind, _ in entries] != kinds:
                        raise ValueError("its entries are not the kinds its name says")
            except (ValueError, KeyError, TypeError) as exc:
                log.error("outbox: %s cannot be read (%s); moved to rejected/", path.name, exc)
                self.rejected_dir.mkdir(exist_ok=True)
                os.replace(path, self.rejected_dir / path.name)
                continue
            self._append(entries)
            path.unlink()

    # --- delivery ----------------------------------------------------------------

    def _deliver(self, record: _Record, i: int, kind: str, payload: dict) -> bool:
        """Hand one entry to its handler: True once it is done with (taken,
        or refused for good and kept in rejected/), False to retry later."""
        name = f"outbox entry {record.seq} [{i}: {kind}]"
        try:
            self.handlers[kind](payload)
        except Unreachable as exc:
            log.info("%s not delivered yet: %s", name, exc)
            return False
        except ApiError as exc:
            if exc.status in (408, 429) or exc.status >= 500:
                log.info("%s not accepted yet: %s", name, exc)
                return False
            kept = self._reject(record, i, kind, payload)
            log.error("%s refused for good (%s); kept in %s", name, exc, kept)
            return True
        except Exception:  # a bug or an odd reply: keep the entry, retry later
            log.exception("%s could not be delivered", name)
            return False
        return True

    def _reject(self, record: _Record, i: int, kind: str, payload: dict) -> Path:
        """The entry, as a file of its own in rejected/: `<number>-<kind>.json`
        for a record of one entry, `<number>-<index>-<kind>.json` of several."""
        self.rejected_dir.mkdir(exist_ok=True)
        index = f"{i}-" if len(record.entries) > 1 else ""
        path = self.rejected_dir / f"{record.seq:012d}-{index}{kind}.json"
        path.write_text(json.dumps(payload, default=str))
        return path


def waiting(directory: Path) -> list[tuple[int, list[str]]]:
    """What a helper started on `directory` would deliver: each record not
    done with, by number, and its entries' kinds (for a look from outside
    the helper: it changes nothing on disk)."""
    left: list[tuple[int, list[str]]] = []
    for path in sorted(Path(directory).glob(JOURNAL)):
        data = path.read_bytes()
        records, done, _ = _parse(data[: data.rfind(b"\n") + 1])
        left += [(seq, [k for k, _ in e]) for seq, e in records.items() if seq not in done]
    return sorted(left)


def _parse(data: bytes) -> tuple[dict[int, list[Entry]], set[int], dict[int, tuple]]:
    """Ended journal lines: the records by number, the numbers marked done,
    and the lines that cannot be read, by line number (with why)."""
    records: dict[int, list[Entry]] = {}
    done: set[int] = set()
    unread: dict[int, tuple] = {}
    for n, line in enumerate(data.splitlines(), 1):
        try:
            item = json.loads(line)
            if "done" in item:
                done.add(int(item["done"]))
            else:
                records[int(item["seq"])] = _entries_of(item)
        except (ValueError, KeyError, TypeError) as exc:
            unread[n] = (line, exc)
    return records, done, unread


def _entries_of(content: dict) -> list[Entry]:
    return [(e["kind"], e["payload"]) for e in content["entries"]]


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(segment: _Segment) -> None:
    if segment.fd is not None:
        os.close(segment.fd)
        segment.fd = None
    segment.path.unlink(missing_ok=True)
