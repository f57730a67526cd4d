"""A durable outbox: what the helper must deliver (results to the channel,
final events to the seeker) is written to disk first, then sent in order and
retried with backoff until acknowledged, across restarts."""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from serving.http import ApiError, Unreachable
from serving.worker import Worker

log = logging.getLogger(__name__)

Deliver = Callable[[dict], None]


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
        kept = [*self._entries(), *self.rejected_dir.glob("*.json")]
        existing = [int(p.name.split("-", 1)[0]) for p in kept]
        self._seq = itertools.count(max(existing, default=0) + 1)
        self._lock = threading.Lock()
        self._sender = Worker("outbox", self.flush_once, 0.5, max_backoff)

    def put(self, kind: str, payload: dict) -> Path:
        """Write one entry durably (fsync, then rename) and wake the sender."""
        if kind not in self.handlers:
            raise ValueError(f"unknown outbox kind {kind!r}")
        with self._lock:
            path = self.dir / f"{next(self._seq):012d}-{kind}.json"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(payload, f, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._sender.wake()
        return path

    def pending(self) -> int:
        return len(self._entries())

    def _entries(self) -> list[Path]:
        return sorted(self.dir.glob("*.json"))

    def start(self) -> Outbox:
        self._sender.start()
        return self

    def stop(self) -> None:
        self._sender.stop()

    def flush_once(self) -> bool:
        """Deliver entries in order, each lane until one of its entries fails;
        True when none is left."""
        blocked: set[str] = set()
        for path in self._entries():
            kind = path.stem.split("-", 1)[1]
            lane = self.lanes.get(kind, kind)
            if lane in blocked:
                continue
            try:
                payload = json.loads(path.read_text())
            except ValueError:
                log.error("outbox: %s is not valid JSON; moved to %s", path.name, self.rejected_dir)
                self._reject(path)
                continue
            try:
                self.handlers[kind](payload)
            except Unreachable as exc:
                log.info("outbox: %s not delivered yet: %s", path.name, exc)
                blocked.add(lane)
                continue
            except ApiError as exc:
                if exc.status in (408, 429) or exc.status >= 500:
                    log.info("outbox: %s not accepted yet: %s", path.name, exc)
                    blocked.add(lane)
                    continue
                log.error(
                    "outbox: %s refused for good (%s); kept in %s",
                    path.name,
                    exc,
                    self.rejected_dir,
                )
                self._reject(path)
                continue
            except Exception:  # a bug or an odd reply: keep the entry, retry later
                log.exception("outbox: %s could not be delivered", path.name)
                blocked.add(lane)
                continue
            path.unlink()
        return not blocked

    def _reject(self, path: Path) -> None:
        self.rejected_dir.mkdir(exist_ok=True)
        os.replace(path, self.rejected_dir / path.name)
