"""A durable outbox: what the helper must deliver (results to the channel,
final events to the seeker) is written to disk first, then sent in order and
retried with backoff until acknowledged, across restarts.

One file holds one entry (`put`) or the entries of one finished run
(`put_all`: its artifacts, result and final event, one fsync for all). The
files on disk are the truth across restarts; while the process runs, what it
wrote is also kept in memory, so a delivery neither lists the directory nor
reads back what it has just written."""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from serving.http import ApiError, Unreachable
from serving.worker import Worker

log = logging.getLogger(__name__)

Deliver = Callable[[dict], None]
Entry = tuple[str, dict]  # (kind, payload)
JOIN = "+"  # between the kinds in the name of a file of several entries


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
        self._lock = threading.Lock()
        # file -> its entries; and, for a file of several, the ones delivered
        self._files: dict[Path, list[Entry]] = {}
        self._delivered: dict[Path, set[int]] = {}
        kept = sorted(self.dir.glob("*.json"))
        rejected = self.rejected_dir.glob("*.json")
        existing = [int(p.name.split("-", 1)[0]) for p in (*kept, *rejected)]
        self._seq = itertools.count(max(existing, default=0) + 1)
        for path in kept:
            self._load(path)
        self._sender = Worker("outbox", self.flush_once, 0.5, max_backoff)

    def put(self, kind: str, payload: dict) -> Path:
        """Write one entry durably (fsync, then rename) and wake the sender."""
        return self.put_all([(kind, payload)])

    def put_all(self, entries: Iterable[Entry]) -> Path:
        """Write entries in one file, durably (one fsync, then rename), and
        wake the sender. They are delivered in this order within each lane;
        each is acknowledged on its own."""
        entries = list(entries)
        if not entries:
            raise ValueError("nothing to put in the outbox")
        for kind, _ in entries:
            if kind not in self.handlers:
                raise ValueError(f"unknown outbox kind {kind!r}")
        kinds = [kind for kind, _ in entries]
        with self._lock:
            path = self.dir / f"{next(self._seq):012d}-{JOIN.join(kinds)}.json"
        if len(entries) == 1:
            content: object = entries[0][1]  # as written before files held several
        else:
            content = {"entries": [{"kind": k, "payload": p} for k, p in entries]}
        text = json.dumps(content, default=str)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        # what a delivery hands on is what a restarted helper would read back
        kept = _entries_of(kinds, json.loads(text))
        with self._lock:
            self._files[path] = kept
        self._sender.wake()
        return path

    def pending(self) -> int:
        """Entries not delivered yet."""
        with self._lock:
            return sum(
                len(entries) - len(self._delivered.get(path, ()))
                for path, entries in self._files.items()
            )

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
            files = sorted(self._files.items())
        for path, entries in files:
            with self._lock:
                done = set(self._delivered.get(path, ()))
            for i, (kind, payload) in enumerate(entries):
                lane = self.lanes.get(kind, kind)
                if i in done or lane in blocked:
                    continue
                if self._deliver(path, i, kind, payload):
                    done.add(i)
                else:
                    blocked.add(lane)
            self._settle(path, entries, done)
        return not blocked

    def _deliver(self, path: Path, i: int, kind: str, payload: dict) -> bool:
        """Hand one entry to its handler: True once it is done with (taken,
        or refused for good and kept in rejected/), False to retry later."""
        name = path.name if JOIN not in path.name else f"{path.name} [{i}: {kind}]"
        try:
            self.handlers[kind](payload)
        except Unreachable as exc:
            log.info("outbox: %s not delivered yet: %s", name, exc)
            return False
        except ApiError as exc:
            if exc.status in (408, 429) or exc.status >= 500:
                log.info("outbox: %s not accepted yet: %s", name, exc)
                return False
            log.error("outbox: %s refused for good (%s); kept in %s", name, exc, self.rejected_dir)
            self._reject_entry(path, i, kind, payload)
            return True
        except Exception:  # a bug or an odd reply: keep the entry, retry later
            log.exception("outbox: %s could not be delivered", name)
            return False
        return True

    def _settle(self, path: Path, entries: list[Entry], done: set[int]) -> None:
        """Remove the file once every entry in it is done with."""
        if len(done) < len(entries):
            if done:
                with self._lock:
                    self._delivered[path] = done
            return
        path.unlink(missing_ok=True)
        with self._lock:
            self._files.pop(path, None)
            self._delivered.pop(path, None)

    def _load(self, path: Path) -> None:
        """A file left by an earlier process: its entries, or rejected/ if
        it cannot be read."""
        kinds = path.stem.split("-", 1)[1].split(JOIN)
        try:
            entries = _entries_of(kinds, json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            log.error(
                "outbox: %s cannot be read (%s); moved to %s", path.name, exc, self.rejected_dir
            )
            self._reject(path, path.name)
            return
        self._files[path] = entries

    def _reject_entry(self, path: Path, i: int, kind: str, payload: dict) -> None:
        if JOIN not in path.name:  # a file of one entry is moved as it is
            self._reject(path, path.name)
            return
        self.rejected_dir.mkdir(exist_ok=True)
        seq = path.name.split("-", 1)[0]
        (self.rejected_dir / f"{seq}-{i}-{kind}.json").write_text(json.dumps(payload))

    def _reject(self, path: Path, name: str) -> None:
        self.rejected_dir.mkdir(exist_ok=True)
        os.replace(path, self.rejected_dir / name)


def _entries_of(kinds: list[str], content) -> list[Entry]:
    """A file's entries from its kinds (its name) and its JSON content."""
    if len(kinds) == 1:
        return [(kinds[0], content)]
    entries = [(e["kind"], e["payload"]) for e in content["entries"]]
    if [kind for kind, _ in entries] != kinds:
        raise ValueError("its entries are not the kinds its name says")
    return entries
