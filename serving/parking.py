"""Long polls that wait without a thread: a request is parked, and its
connection waits in a selector until it is woken, its time is up, or its
client goes away.

A WSGI view that has nothing to answer yet calls `suspend()` from its
environ (`PARK`; `answer_or_park()` does so for a long poll's view); the
server then sends nothing, and once the worker thread has let go of the
connection (`admit()`) the connection waits here, costing
a socket and a few hundred bytes, not a thread. `wake(key)` (new work for
that key), the deadline, or the client closing its end ends the wait: a
woken or expired request is handed back to the server's worker threads and
the view runs again, from the top, with the same body and `RESUMED` in its
environ saying why (an expired one whose view gave its answer for that case
is sent that answer instead); a request whose client went away is dropped, and
`on_drop(key)` says so at once (a helper whose poll connection drops has
usually died: its kernel closed the socket).

This is the suspend and resume of servlet containers (Jetty's
continuations), on cheroot: see serving/wsgi.py for the hooks."""

from __future__ import annotations

import heapq
import io
import itertools
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

PARK = "seeker.park"  # environ: the Suspender of this request (absent: cannot park)
# environ: why a parked request runs again ("woken", "expired"), the seconds
# left of its wait, and the key it waited under
RESUMED = "seeker.resumed"
NEW_CONNECTION = "seeker.new_connection"  # environ: the first request of its connection
WOKEN, EXPIRED = "woken", "expired"
# Parked connections at most; beyond, a request is answered at once (each
# parked connection holds a file descriptor: see raise_open_files_limit()).
PARKED_LIMIT = 20_000
# A key's generation is kept while a request waits under it, and for this
# many seconds after a view last read it (longer than any view runs between
# reading it and its request being admitted); then forgotten, so that keys
# of one use (a task's end) do not pile up. Looked for once the keys double.
GENERATION_KEPT = 300.0
PRUNE_FROM = 1024


@dataclass(eq=False)
class Parked:
    conn: object  # cheroot HTTPConnection
    req: object  # its HTTPRequest, answered when resumed
    key: str
    deadline: float  # monotonic
    body: bytes
    generation: int  # of `key` when the view found nothing to answer
    expired: Callable[[], bytes] | None = None  # the JSON answer when its time is up
    seq: int = field(default_factory=itertools.count().__next__)


class Suspender:
    """What a view finds under `environ[PARK]`: `generation(key)` before it
    looks for something to answer, `suspend(key, seconds, body, generation)`
    when it found nothing (then whatever it returns is not sent)."""

    def __init__(self, parking: Parking, req):
        self.parking = parking
        self.req = req
        self.suspended = False

    def generation(self, key: str) -> int:
        return self.parking.generation(key)

    def suspend(
        self,
        key: str,
        seconds: float,
        body: bytes,
        generation: int,
        expired: Callable[[], bytes] | None = None,
    ) -> bool:
        """Park this request for up to `seconds`; False when it cannot be
        (the client asked to close the connection, or too many are parked):
        then answer now. `expired()`: the JSON answer (200) when nothing
        came in time, sent without running the view again (most long polls
        end so, and a run of the app costs what the poll did)."""
        if self.req.close_connection or not self.parking.has_room():
            return False
        deadline = self.parking.now() + seconds
        self.req.conn.seeker_parked = Parked(
            self.req.conn, self.req, key, deadline, body, generation, expired
        )
        self.suspended = True
        return True


def answer_or_park(
    environ: dict,
    key: str,
    look: Callable[[tuple | None], tuple[object, bool]],
    wait: Callable[[], float],
    body: bytes = b"",
    expired: Callable[[], bytes] | None = None,
) -> object:
    """A long poll's view: `look(resumed)` (None at first, else (why, seconds
    left)) returns (the answer, whether it has news), looked for after the
    key's generation is read, so a wake in between is not lost. With news,
    on a server that cannot park, or with no time left (`wait()` at first,
    what is left when resumed), the answer; else the request is parked for
    that long with `body` and "" returned, which is not sent."""
    parker, resumed = environ.get(PARK), environ.get(RESUMED)
    generation = parker.generation(key) if parker is not None else 0
    answer, news = look(resumed)
    left = wait() if resumed is None else resumed[1]
    if news or parker is None or left <= 0:
        return answer
    if parker.suspend(key, left, body, generation, expired=expired):
        return ""
    return answer


def park_on_watched(
    environ: dict,
    watch: Callable[[str | None], str | None],
    still: Callable[[str], bool],
    wait: Callable[[], float],
) -> bool:
    """Park a request whose answer waits for one of many things, under the
    key of the one `watch(before)` names (None: nothing left to wait for;
    `before`: the key this request watched last, if any), until that key is
    woken or its time is up (`wait()` at first, what is left when resumed);
    the view then runs again and watches the next. The key's generation is
    read before `still(key)` says it is still worth waiting for, so a wake
    in between is not lost. True when parked (the view returns "", which is
    not sent); False when the view is to answer now."""
    parker, resumed = environ.get(PARK), environ.get(RESUMED)
    left = wait() if resumed is None else resumed[1]
    if parker is None or left <= 0:
        return False
    before = resumed[2] if resumed is not None and len(resumed) > 2 else None
    while (key := watch(before)) is not None:
        generation = parker.generation(key)
        if still(key):
            return parker.suspend(key, left, b"", generation)
        before = key
    return False


class Parking:
    """The parked requests of one server. `resume(conn)` hands a connection
    back to the server's worker threads (set by serving.wsgi). `kind(key)`
    sorts the keys into kinds whose parked requests are counted as they
    come and go (`parked(kind=...)`)."""

    def __init__(
        self,
        on_drop: Callable[[str], None] = lambda key: None,
        now: Callable[[], float] = time.monotonic,
        limit: int = PARKED_LIMIT,
        kind: Callable[[str], str] = lambda key: "",
    ):
        self.on_drop = on_drop
        self.now = now
        self.limit = limit
        self.kind = kind
        self._of_kind: dict[str, int] = {}
        self.resume: Callable[[object], None] = lambda conn: None
        self._lock = threading.Lock()
        self._generations: dict[str, int] = {}
        self._read_at: dict[str, float] = {}  # key -> when a view last read its generation
        self._prune_at = PRUNE_FROM
        self._by_key: dict[str, set[Parked]] = {}
        self._by_fd: dict[int, Parked] = {}
        self._deadlines: list[tuple[float, int, Parked]] = []
        self._selector = selectors.DefaultSelector()
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        self._wakeup_r.setblocking(False)
        self._selector.register(self._wakeup_r, selectors.EVENT_READ, None)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="parking", daemon=True)

    # --- what views and the domain call ----------------------------------------

    def generation(self, key: str) -> int:
        """What `wake(key)` counts, read before a view looks for its answer:
        a wake after this read makes `admit` resume the request at once."""
        with self._lock:
            self._read_at[key] = self.now()
            if len(self._read_at) >= self._prune_at:
                self._prune()
            return self._generations.get(key, 0)

    def has_room(self) -> bool:
        with self._lock:
            return len(self._by_fd) < self.limit

    def parked(self, key: str | None = None, kind: str | None = None) -> int:
        """How many requests are parked: in all, under `key`, or of `kind`."""
        with self._lock:
            if kind is not None:
                return self._of_kind.get(kind, 0)
            return len(self._by_fd) if key is None else len(self._by_key.get(key, ()))

    def keys(self, prefix: str = "") -> list[str]:
        """The keys that requests are parked under, those starting with `prefix`."""
        with self._lock:
            return [k for k in self._by_key if k.startswith(prefix)]

    def wake(self, key: str) -> int:
        """Something for `key`: its parked requests run again now (and one
        being parked meanwhile does not wait). Returns how many were woken."""
        with self._lock:
            if key in self._read_at or key in self._by_key:  # else no view is looking
                self._generations[key] = self._generations.get(key, 0) + 1
            woken = list(self._by_key.get(key, ()))
            for p in woken:
                self._forget(p)
        for p in woken:
            self._resume(p, WOKEN)
        return len(woken)

    # --- what the server calls -------------------------------------------------

    def admit(self, conn) -> None:
        """The worker thread let go of a connection whose request was
        suspended: wait here (or resume at once if woken meanwhile)."""
        p: Parked = conn.seeker_parked
        conn.seeker_parked = None
        with self._lock:
            stopped = self._stopped
            stale = self._generations.get(p.key, 0) != p.generation
            if not stopped and not stale:
                self._by_key.setdefault(p.key, set()).add(p)
                kind = self.kind(p.key)
                self._of_kind[kind] = self._of_kind.get(kind, 0) + 1
                self._by_fd[conn.socket.fileno()] = p
                heapq.heappush(self._deadlines, (p.deadline, p.seq, p))
                self._selector.register(conn.socket.fileno(), selectors.EVENT_READ, p)
        if stopped:
            # as stop() does to those parked before: its client polls again.
            # (Resumed, it ran the view again, which parked it again, until
            # the server stopped with it in its queue, neither answered nor
            # closed: a pulling helper's poll then waited 80 s for nothing.)
            _close(conn)
        elif stale:
            self._resume(p, WOKEN)
        else:
            self._poke()

    def start(self) -> Parking:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every parked connection (their clients poll again)."""
        with self._lock:
            self._stopped = True
            parked = list(self._by_fd.values())
            for p in parked:
                self._forget(p)
        for p in parked:
            _close(p.conn)
        self._poke()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._selector.close()
        self._wakeup_r.close()
        self._wakeup_w.close()

    # --- the waiting -------------------------------------------------------------

    def _forget(self, p: Parked) -> None:
        """Under the lock: p no longer waits (its deadline entry goes stale)."""
        fd = p.conn.socket.fileno()
        if self._by_fd.get(fd) is not p:
            return
        del self._by_fd[fd]
        self._of_kind[self.kind(p.key)] -= 1
        peers = self._by_key.get(p.key)
        if peers is not None:
            peers.discard(p)
            if not peers:
                del self._by_key[p.key]
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def _prune(self) -> None:
        """Under the lock: forget the generations of keys nobody waits under
        and no view read for GENERATION_KEPT seconds."""
        cutoff = self.now() - GENERATION_KEPT
        for key in [k for k, at in self._read_at.items() if at < cutoff]:
            if key not in self._by_key:
                del self._read_at[key]
                self._generations.pop(key, None)
        self._prune_at = max(PRUNE_FROM, 2 * len(self._read_at))

    def _resume(self, p: Parked, reason: str) -> None:
        left = max(0.0, p.deadline - self.now())
        p.conn.seeker_resume = (p.req, p.body, reason, left, p.expired, p.key)
        self.resume(p.conn)

    def _poke(self) -> None:
        try:
            self._wakeup_w.send(b"\0")
        except OSError:  # the buffer is full: the loop is awake anyway
            pass

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                timeout = self._next_timeout()
            for selected, _ in self._selector.select(timeout):
                p = selected.data
                if p is None:
                    self._drain_wakeup()
                    continue
                self._dropped(p)
            self._expire()

    def _next_timeout(self) -> float | None:
        while (
            self._deadlines
            and self._by_fd.get(_fd(self._deadlines[0][2].conn)) is not self._deadlines[0][2]
        ):
            heapq.heappop(self._deadlines)  # woken or dropped before its time
        if not self._deadlines:
            return None
        return min(3600.0, max(0.0, self._deadlines[0][0] - self.now()))

    def _drain_wakeup(self) -> None:
        try:
            while self._wakeup_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _dropped(self, p: Parked) -> None:
        """The client's end is readable while it waits for an answer: it
        closed the connection (an HTTP client sends nothing meanwhile)."""
        with self._lock:
            if self._by_fd.get(_fd(p.conn)) is not p:
                return
            self._forget(p)
        _close(p.conn)
        try:
            self.on_drop(p.key)
        except Exception:  # the callback's failure must not stop the loop
            log.exception("parked request of %s: drop callback failed", p.key)

    def _expire(self) -> None:
        now, due = self.now(), []
        with self._lock:
            while self._deadlines and self._deadlines[0][0] <= now:
                _, _, p = heapq.heappop(self._deadlines)
                if self._by_fd.get(_fd(p.conn)) is p:
                    self._forget(p)
                    due.append(p)
        for p in due:
            self._resume(p, EXPIRED)


def _fd(conn) -> int:
    return conn.socket.fileno()


def _close(conn) -> None:
    try:
        conn.close()
    except Exception:  # already closed by the peer: nothing to release
        log.debug("closing a parked connection failed", exc_info=True)


def replay_body(body: bytes):
    """The request body of a resumed request, read from memory."""
    return io.BytesIO(body)


def raise_open_files_limit() -> int:
    """Each parked connection holds a file descriptor: raise this process's
    soft limit to its hard limit. Returns the soft limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
