"""The MongoDB a service uses: the URL it was given, or an embedded
SecantusDB server kept under its data directory."""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path

import pymongo
from pymongo.database import Database

log = logging.getLogger(__name__)

EMBEDDED_MISSING = (
    "no --mongo-url given and the embedded database is not installed; "
    "either pass --mongo-url mongodb://... or install the extra: pip install 'seeker[embedded]'"
)

# seconds closing the client may wait for the server (to end its sessions)
CLOSE_WAIT = 2.0


class DatabaseConnection:
    """Owns a MongoClient (and, when embedded, the server behind it)."""

    def __init__(self, mongo_url: str | None, data_dir: Path):
        self._embedded = None
        if not mongo_url:
            try:
                from secantus import SecantusDBServer
            except ImportError as exc:
                raise RuntimeError(EMBEDDED_MISSING) from exc
            storage = Path(data_dir) / "db"
            storage.mkdir(parents=True, exist_ok=True)
            self._embedded = SecantusDBServer(storage_path=str(storage))
            self._embedded.start()
            mongo_url = self._embedded.uri
            log.info("embedded database at %s (data in %s)", mongo_url, storage)
        self.url = mongo_url
        # The embedded server keeps a record of recent writes for retryable
        # writes and scans it on every write (20% of its time under load); it
        # runs in-process, so a retry has nothing to outlive. A real MongoDB
        # keeps pymongo's default.
        extra = {"retryWrites": False} if self._embedded is not None else {}
        self.client: pymongo.MongoClient = pymongo.MongoClient(
            mongo_url, serverSelectionTimeoutMS=10_000, tz_aware=True, **extra
        )

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    def database(self, default_name: str) -> Database:
        """The database named in the URL's path, else `default_name`."""
        return self.client.get_default_database(default_name)

    def stop(self) -> None:
        """Stop as every other component does (see serving.cli.serve_until_signal)."""
        self.close()

    def close(self) -> None:
        # closing ends the client's sessions at the server: with the server
        # away, for CLOSE_WAIT seconds at most, not the selection timeout
        with pymongo.timeout(CLOSE_WAIT):
            self.client.close()
        if self._embedded is not None:
            stop_embedded(self._embedded)
            self._embedded = None


def stop_embedded(server) -> None:
    """Stop a SecantusDB server without its 2 s wait. Its `stop()` closes
    its listening socket and then waits 2 s for its accept thread, but on
    Linux a close does not wake a thread blocked in `accept()`. A shutdown
    of the socket first does (the accept fails, and the loop returns). The
    socket is SecantusDB's own attribute: without it, the stop is as slow
    as before, not wrong."""
    listening = getattr(server, "_socket", None)
    if isinstance(listening, socket.socket):
        with contextlib.suppress(OSError):
            listening.shutdown(socket.SHUT_RDWR)
    server.stop()
