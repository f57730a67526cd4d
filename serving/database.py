"""The MongoDB a service uses: the URL it was given, or an embedded
SecantusDB server kept under its data directory."""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path

import pymongo
from pymongo.database import Database
from pymongo.errors import OperationFailure

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
        # SecantusDB keeps a record of recent writes for retryable writes and
        # scans all of it (up to 10,000, kept 30 minutes) on every write:
        # 15-20% of its time under load (bench/findings.md, 2 and 46). It is
        # one node, with no failover for a retry to outlive, so its writes
        # are not sent as retryable: the embedded one's at once, a server's
        # named by URL once database() has asked it what it is. A real
        # MongoDB keeps pymongo's default, as does a URL that says.
        embedded = self._embedded is not None
        self._asked = embedded or names_retry_writes(mongo_url)
        self.client: pymongo.MongoClient = self._client(retry_writes=not embedded)

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    def database(self, default_name: str) -> Database:
        """The database named in the URL's path, else `default_name`."""
        if not self._asked:
            self._asked = True
            self._single_node_writes()
        return self.client.get_default_database(default_name)

    def _client(self, retry_writes: bool) -> pymongo.MongoClient:
        extra = {} if retry_writes else {"retryWrites": False}
        return pymongo.MongoClient(
            self.url, serverSelectionTimeoutMS=10_000, tz_aware=True, **extra
        )

    def _single_node_writes(self) -> None:
        """A SecantusDB server gets its writes as plain writes: the client
        is made again without retryable writes."""
        if is_secantus(self.client):
            log.info("SecantusDB: writes not retryable")
            old, self.client = self.client, self._client(retry_writes=False)
            old.close()

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


def is_secantus(client: pymongo.MongoClient) -> bool:
    """Whether the client's server is SecantusDB (its buildInfo names its
    version). A server that is not reached fails here, as a service's first
    use of it would; one that refuses the command is taken for another."""
    try:
        return "secantusVersion" in client.admin.command("buildInfo")
    except OperationFailure:
        return False


def names_retry_writes(url: str) -> bool:
    """Whether a MongoDB URL sets `retryWrites` itself (any case, as
    MongoDB's options are)."""
    query = url.partition("?")[2]
    return any(part.partition("=")[0].lower() == "retrywrites" for part in query.split("&"))


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
