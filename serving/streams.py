"""The streams a plain (not TLS) connection of serving.wsgi's server reads
its requests from and writes its answers to, in place of cheroot's.

cheroot's (cheroot.makefile) are built on `_pyio`, Python's pure-Python io:
every line of a request's head is read by Python code that peeks and
slices, and every write goes through a Python buffer and lock. These are
the C `io.BufferedReader`, and a writer that hands each write to the
socket's `sendall`: about 0.04 ms less of the server's CPU an exchange,
of 0.5 (bench/findings.md, 45). A TLS connection keeps cheroot's, which turn
the SSL module's errors into cheroot's own."""

from __future__ import annotations

import io
import socket


class Reader(io.BufferedReader):
    """A connection's request stream. `bytes_read` is there for cheroot's
    statistics, which this server does not turn on: it is not counted."""

    bytes_read = 0

    def __init__(self, sock: socket.socket, bufsize: int = io.DEFAULT_BUFFER_SIZE):
        super().__init__(socket.SocketIO(sock, "rb"), bufsize)
        self._sock = sock

    def has_data(self) -> bool:
        """Whether a request's bytes are here to be read without waiting: in
        the buffer, or on the socket (read into the buffer, without
        blocking). cheroot asks before it parks an idle connection in its
        selector, which would not wake for bytes already read."""
        try:
            timeout = self._sock.gettimeout()
            self._sock.setblocking(False)
            try:
                return bool(self.peek(1))  # b"": nothing yet, or the end
            finally:
                self._sock.settimeout(timeout)
        except (OSError, ValueError):  # reset or closed: the next read says so
            return False  # (raised, it would stop the server: cheroot asks in a finally)


class Writer:
    """A connection's answer stream: each write sent whole at once, as
    cheroot's writer does (it keeps nothing back for a later flush)."""

    bytes_written = 0  # as Reader's bytes_read
    closed = False

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def write(self, data) -> int:
        if isinstance(data, str):
            raise TypeError("can't write str to binary stream")
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def make_file(sock: socket.socket, mode: str = "r", bufsize: int = io.DEFAULT_BUFFER_SIZE):
    """cheroot's `makefile`, for HTTPConnection: a reader for "r", else a writer."""
    return Reader(sock, bufsize) if "r" in mode else Writer(sock)
