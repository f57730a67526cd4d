"""Serving a Flask app with cheroot (a production WSGI server that also
speaks TLS), on a background thread."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time

from cheroot import errors, wsgi
from cheroot.makefile import MakeFile
from cheroot.server import HTTPConnection, KnownLengthRFile

from serving.parking import (
    EXPIRED,
    NEW_CONNECTION,
    PARK,
    RESUMED,
    Parking,
    Suspender,
    raise_open_files_limit,
    replay_body,
)
from serving.streams import make_file
from serving.tls import ServerCert

log = logging.getLogger(__name__)

# Idle keep-alive connections kept open: every helper keeps one to the seeker
# (its heartbeat beats IDLE_TIMEOUT), a pulling helper one more for its poll,
# and the seeker one to each pushed helper. They wait in a selector, not in
# a worker thread, so they cost no thread, only a file descriptor: as many as
# the process may open (less some for everything else), and at least this.
CONNECTION_LIMIT = 4096
SPARE_DESCRIPTORS = 512
# Seconds the reading of a request may take (the socket timeout).
IDLE_TIMEOUT = 60
# Seconds an idle keep-alive connection stays open: longer than the longest
# heartbeat interval the seeker asks for (300 s, a fleet of 15,000), so a
# helper's beats reuse its connection in any fleet instead of connecting
# anew each time. Looked for every KEEP_ALIVE_CHECK seconds, not at every
# turn of the selector loop (cheroot's 0.5 s walks every idle connection:
# 5,000 of them cost a fifth of an idle seeker's CPU).
KEEP_ALIVE = 330
KEEP_ALIVE_CHECK = 10.0
LISTEN_BACKLOG = 128
# Seconds between the main thread's looks for a signal (wait_for_signal).
SIGNAL_LOOK = 0.5


class _Gateway(wsgi.Gateway_10):
    """WSGI 1.0, plus parking (serving/parking.py): a view may suspend its
    request, and then nothing is sent; a resumed request runs the app again."""

    def get_environ(self):
        env = super().get_environ()
        resumed = getattr(self.req, "seeker_resumed", None)
        if resumed is not None:
            env[RESUMED] = resumed
        env[NEW_CONNECTION] = self.req.conn.seeker_requests == 1
        parking = self.req.server.parking
        if parking is not None:
            env[PARK] = Suspender(parking, self.req)
        return env

    def respond(self):
        suspender = self.env.get(PARK)
        if suspender is None:
            return super().respond()
        response = self.req.server.wsgi_app(self.env, self.start_response)
        if not suspender.suspended:
            return self._send(response)
        if hasattr(response, "close"):
            response.close()
        self.req.ready = False  # no headers now: the answer comes when resumed
        return None

    def _send(self, response):
        try:
            for chunk in filter(None, response):
                if not isinstance(chunk, bytes):
                    raise ValueError("WSGI Applications must yield bytes")
                self.write(chunk)
        finally:
            self.req.ensure_headers_sent()
            if hasattr(response, "close"):
                response.close()


class _Connection(HTTPConnection):
    """A connection that, on a TLS server, shakes hands before its first
    request, on the worker thread that serves it (see serving.tls), and that
    answers a parked request when it is resumed."""

    _handshaken = False
    seeker_parked = None  # a Parked, while its request is being suspended
    seeker_resume = None  # (request, body, reason, seconds left, expired, key) to answer now
    seeker_requests = 0  # requests read on this connection

    def __init__(self, server, sock, makefile=MakeFile):
        # a plain connection reads and writes through C io, not cheroot's
        # pure-Python streams (serving/streams.py); a TLS one through its
        # adapter's, as cheroot hands them
        super().__init__(server, sock, make_file if makefile is MakeFile else makefile)

    def communicate(self):
        if self.seeker_resume is not None:
            return self._resumed()
        self.seeker_requests += 1
        adapter = self.server.ssl_adapter
        if adapter is not None and not self._handshaken:
            self._handshaken = True
            secure = adapter.handshake(self.socket, (self.remote_addr, self.remote_port))
            if secure is None:
                return False  # closed
            self.socket = secure
            self.rfile = adapter.makefile(secure, "rb", self.rbufsize)
            self.wfile = adapter.makefile(secure, "wb", self.wbufsize)
        return super().communicate()

    def _resumed(self) -> bool:
        """Run the app again for a parked request and send its answer (as
        HTTPRequest.respond does, the body read from memory)."""
        req, body, reason, left, expired, key = self.seeker_resume
        self.seeker_resume = None
        req.ready, req.outheaders, req.seeker_resumed = True, [], (reason, left, key)
        req.rfile = KnownLengthRFile(replay_body(body), len(body))
        try:
            gateway = self.server.gateway(req)
            if reason == EXPIRED and expired is not None:
                answer = expired()  # what the view said to answer then: no run of the app
                length = str(len(answer))
                gateway.start_response(
                    "200 OK", [("Content-Type", "application/json"), ("Content-Length", length)]
                )
                gateway.write(answer)
            else:
                gateway.respond()
            if req.ready:
                req.ensure_headers_sent()
                if req.chunked_write:
                    self.wfile.write(b"0\r\n\r\n")
            return not req.close_connection
        except (OSError, errors.FatalSSLAlert):
            return False  # the client went away meanwhile
        except Exception:
            log.exception("answering a parked request failed")
            return False

    def close(self):
        if self.socket.fileno() == -1:  # already closed by a failed handshake
            return  # (cheroot's close() would fail, and stop the whole server)
        super().close()


class _Server(wsgi.Server):
    """cheroot's WSGI server, bound when built (so `port=0` has its port at
    once and a taken port fails there), logging through `logging`."""

    ConnectionClass = _Connection
    _bound: socket.socket | None = None
    parking: Parking | None = None

    def bind_now(self) -> None:
        host, port = self.bind_addr
        family, kind, proto, _, _ = socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )[0]
        self._bound = super().bind(family, kind, proto)

    def bind(self, family, type, proto=0):  # noqa: A002 (cheroot's signature)
        if self._bound is not None:  # prepare() binds again: hand it ours
            self.socket, self._bound = self._bound, None
            return self.socket
        return super().bind(family, type, proto)

    def error_log(self, msg="", level=logging.INFO, traceback=False):
        log.log(level, "%s", msg, exc_info=traceback)

    def prepare(self):
        super().prepare()
        manager = self._connections
        expire, checked = manager._expire, [time.monotonic()]

        def expire_idle(threshold: float) -> None:
            """Close the keep-alive connections idle for KEEP_ALIVE, at
            most every KEEP_ALIVE_CHECK seconds (cheroot's `threshold` is
            the read timeout's)."""
            now = time.monotonic()
            if now - checked[0] >= KEEP_ALIVE_CHECK:
                checked[0] = now
                expire(time.time() - KEEP_ALIVE)

        manager._expire = expire_idle

    def put_conn(self, conn):
        """A connection whose request was suspended waits in the parking, not
        with the idle keep-alive connections."""
        if conn.seeker_parked is not None and self.parking is not None:
            self.parking.admit(conn)
            return
        super().put_conn(conn)

    def process_conn(self, conn):
        """A new connection waits in the selector, as an idle keep-alive one
        does, until its client sends something; only then does a worker
        thread take it. (cheroot hands new connections to a worker at once,
        so a few clients that connect and send nothing, a port scanner or a
        stuck client, would hold every worker until the socket timeout.)"""
        if not getattr(conn, "_spoken", False):
            conn._spoken = True
            if self._connections is not None and not conn.rfile.has_data():
                self._connections.put(conn)
                return
        super().process_conn(conn)


class BackgroundServer:
    """A WSGI server on its own thread, over TLS when given a certificate;
    `port=0` picks a free port. With `parking`, its views may park long
    polls (serving/parking.py)."""

    def __init__(
        self,
        app,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 8,
        cert: ServerCert | None = None,
        parking: Parking | None = None,
    ):
        server = _Server(
            (host, port),
            app,
            numthreads=threads,
            max=threads,
            server_name="seeker",
            request_queue_size=LISTEN_BACKLOG,
            timeout=IDLE_TIMEOUT,
        )
        server.keep_alive_conn_limit = connection_limit()
        server.gateway = _Gateway
        if parking is not None:
            server.parking = parking
            parking.resume = server.process_conn
        self.parking = parking
        if cert is not None:
            server.ssl_adapter = cert.adapter()
        server.bind_now()
        self._server = server
        self.host = host
        self.port = server.bind_addr[1]
        self.scheme = "https" if cert is not None else "http"
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"wsgi-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def _run(self) -> None:
        # prepared on this (daemon) thread, so are cheroot's worker threads:
        # a server nobody stopped does not keep the process alive
        try:
            self._server.prepare()
        except BaseException as exc:
            self._failed = exc
            raise
        finally:
            self._ready.set()
        self._server.serve()

    def start(self) -> BackgroundServer:
        if self.parking is not None:
            self.parking.start()
        self._thread.start()
        self._ready.wait()
        if self._failed is not None:
            raise self._failed
        return self

    def stop(self) -> None:
        """Stop listening, close open (keep-alive) connections, finish the
        requests in flight, and end the server's threads."""
        if self.parking is not None:
            self.parking.stop()
        if not self._thread.is_alive():  # never started: just let the port go
            if self._server.socket is not None:
                self._server.socket.close()
            return
        self._server.stop()
        self._thread.join(timeout=5)


def wait_for_signal() -> int:
    """Block until SIGINT or SIGTERM; return the signal number.

    The kernel may deliver a signal sent to the process to any of its
    threads; Python then runs the handler in the main thread only once that
    thread runs again, and a main thread asleep in a wait without a timeout
    never does. So it wakes every SIGNAL_LOOK seconds."""
    got = threading.Event()
    received = []

    def _handler(signum, _frame):
        received.append(signum)
        got.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handler)
    while not got.wait(SIGNAL_LOOK):
        pass
    return received[0]


def connection_limit() -> int:
    """Keep-alive connections this process can hold, its open-files limit
    raised as far as it goes first (beyond the limit, a connection is
    closed after its answer, and every request then opens a new one)."""
    return max(CONNECTION_LIMIT, raise_open_files_limit() - SPARE_DESCRIPTORS)
