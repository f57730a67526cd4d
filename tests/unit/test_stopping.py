"""A seeker told to stop while its database is away: its last writes are
tried within STOP_WRITES seconds in all, one failing does not keep the
others or the rest of the stop from running, and closing the database
client waits CLOSE_WAIT seconds at most (pymongo's client-side timeout).
An embedded database stops without waiting for its accept thread."""

from __future__ import annotations

import importlib.util
import threading

from pymongo import _csot
from pymongo.errors import ServerSelectionTimeoutError

from seeker.process.server import STOP_WRITES, SeekerServer
from serving.database import CLOSE_WAIT, DatabaseConnection
from tests.requirements import require


class Step:
    """A component's stop step: records the client-side timeout it ran under."""

    def __init__(self, done: list, name: str, fails: bool = False):
        self.done, self.name, self.fails = done, name, fails

    def __call__(self, *args, **kwargs):
        self.done.append((self.name, _csot.get_timeout()))
        if self.fails:
            raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")


def stoppable(done: list) -> SeekerServer:
    server = SeekerServer.__new__(SeekerServer)  # only what stop() calls
    parts = {
        "server": ("stop",),
        "scheduler": ("shutdown",),
        "changes": ("stop",),
        "acceptances": ("close",),
        "health": ("flush",),
        "lease": ("release",),
        "loop": ("stop",),
        "pushes": ("shutdown",),
    }
    for part, methods in parts.items():
        fails = part in ("acceptances", "health")  # the database is away
        steps = {m: Step(done, f"{part}.{m}", fails) for m in methods}
        setattr(server, part, type(part, (), steps)())
    server.webhooks = []
    return server


def test_a_stop_tries_every_last_write_within_its_time_and_goes_on():
    done: list = []
    stoppable(done).stop()
    names = [name for name, _ in done]
    assert names == [
        "server.stop",
        "scheduler.shutdown",
        "changes.stop",
        "acceptances.close",
        "health.flush",
        "lease.release",
        "loop.stop",
        "pushes.shutdown",
    ]
    timed = {name: timeout for name, timeout in done}
    assert timed["acceptances.close"] == STOP_WRITES  # the three writes share one deadline
    assert timed["lease.release"] == STOP_WRITES
    assert timed["loop.stop"] is None


def test_closing_the_client_waits_for_the_server_at_most_close_wait(tmp_path):
    done: list = []
    conn = DatabaseConnection("mongodb://127.0.0.1:9/x", tmp_path)
    real = conn.client.close
    conn.client.close = Step(done, "client.close")
    conn.close()
    real()
    assert done == [("client.close", CLOSE_WAIT)]


def test_the_embedded_database_stops_without_waiting_for_its_accept_thread(tmp_path):
    # SecantusDB's stop() closes its listening socket and waits 2 s for the
    # thread blocked in accept(), which a close does not wake on Linux: the
    # thread was still there after the stop, and every stop took 2 s
    require(importlib.util.find_spec("secantus") is not None, "SecantusDB is not installed")
    before = set(threading.enumerate())
    conn = DatabaseConnection(None, tmp_path)
    accepting = [t for t in set(threading.enumerate()) - before if t.name == "secantus-accept"]
    assert len(accepting) == 1
    conn.client.admin.command("ping")  # connected, as a service's client is
    conn.close()
    accepting[0].join(timeout=10)
    assert not accepting[0].is_alive()
