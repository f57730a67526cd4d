"""The connections a JsonClient's JSON requests go through: libcurl, by
pycurl. libcurl parses and writes HTTP in C; urllib3, which it replaces
here, spent 0.2-0.3 ms of the client's CPU more an exchange
(bench/findings.md, 38), and a task makes three exchanges whose client is
a service. Streamed bodies and answers still go through requests."""

from __future__ import annotations

import os
import threading
from http import HTTPStatus

import pycurl

# a TLS handshake that failed, by libcurl's error codes
_TLS = {
    pycurl.E_SSL_CONNECT_ERROR,
    pycurl.E_PEER_FAILED_VERIFICATION,  # also E_SSL_CACERT: the same code
    pycurl.E_SSL_CERTPROBLEM,
    pycurl.E_SSL_CACERT_BADFILE,
    pycurl.E_SSL_CIPHER,
    pycurl.E_SSL_ISSUER_ERROR,
}


class TransportError(Exception):
    """A request that got no answer. `not_sent`: it surely never reached the
    server (not a byte of it was sent); `tls`: the TLS handshake failed. Its
    text is libcurl's."""

    def __init__(self, message: str, not_sent: bool, tls: bool):
        super().__init__(message)
        self.not_sent = not_sent
        self.tls = tls


class CurlTransport:
    """Up to `size` libcurl handles kept for the threads that send, each with
    its kept-alive connection (a handle must not serve two threads at once).
    `proxy`: the proxy's URL, or "" for none (libcurl's own reading of the
    environment is turned off: JsonClient reads it once, as it is made).
    `ca`: the CA bundle (a file) or directory that servers' certificates
    must be signed by.

    `timeout` is seconds for both, or (to connect, to read) as requests takes
    them; libcurl bounds the whole exchange, so the bound is their sum."""

    def __init__(self, proxy: str, ca: str, ca_is_dir: bool, size: int):
        self.proxy = proxy
        self.ca_option = pycurl.CAPATH if ca_is_dir else pycurl.CAINFO
        self.ca = ca
        self.size = size
        self._idle: list[pycurl.Curl] = []
        self._lock = threading.Lock()
        self._cleared = 0  # times clear() was called: a transfer begun before ends

    def send(
        self, method: str, url: str, body: bytes | None, headers: dict, timeout
    ) -> tuple[int, str, bytes]:
        """(status, reason, body) of the answer; TransportError when none
        came. Redirects are followed: at most 10, to http and https only,
        the Authorization header not sent on to another host, a POST
        answered with 301, 302 or 303 asked again as a GET (as requests
        does), any other method kept (libcurl's)."""
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        handle = self._take()
        chunks: list[bytes] = []
        lines: list[bytes] = []
        cleared = self._cleared
        try:
            self._prepare(handle, method, url, body, headers, connect, read)
            handle.setopt(pycurl.WRITEFUNCTION, chunks.append)
            handle.setopt(pycurl.HEADERFUNCTION, lines.append)
            # libcurl calls this while the transfer goes on (about once a
            # second while it waits for an answer): nonzero aborts it
            handle.setopt(pycurl.NOPROGRESS, 0)
            handle.setopt(pycurl.XFERINFOFUNCTION, lambda *_: self._cleared != cleared)
            try:
                handle.perform()
            except pycurl.error as exc:
                code, text = exc.args
                # not the error's code: a request that met a kept-alive
                # connection closed before its answer is sent once more on a
                # new one, whose refusal (E_COULDNT_CONNECT) is then the
                # error; the bytes sent in this transfer count both
                sent = handle.getinfo(pycurl.REQUEST_SIZE)
                raise TransportError(
                    _message(code, text, handle.getinfo(pycurl.OS_ERRNO)),
                    not_sent=sent == 0,
                    tls=code in _TLS,
                ) from None
            status = handle.getinfo(pycurl.RESPONSE_CODE)
        except BaseException:
            handle.close()  # its connection's state is not known
            raise
        self._give_back(handle)
        return status, _reason(status, lines), b"".join(chunks)

    def _prepare(self, handle, method, url, body, headers, connect, read) -> None:
        setopt = handle.setopt
        setopt(pycurl.URL, url)
        setopt(pycurl.NOSIGNAL, 1)  # threads: no alarm() for timeouts
        setopt(pycurl.PROXY, self.proxy)
        setopt(pycurl.NOPROXY, "")  # nor NO_PROXY at each request: `proxy` says
        setopt(self.ca_option, self.ca)
        setopt(pycurl.FOLLOWLOCATION, 1)
        setopt(pycurl.MAXREDIRS, 10)
        setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(connect * 1000)))
        setopt(pycurl.TIMEOUT_MS, max(1, int((connect + read) * 1000)))
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""  # "Content-Length: 0", as urllib3 sends
        lines = [*(f"{k}: {v}" for k, v in headers.items()), "Expect:"]  # no 100-continue
        if body is not None and "Content-Type" not in headers:
            lines.append("Content-Type:")  # not libcurl's form type
        setopt(pycurl.HTTPHEADER, lines)
        if body is not None:
            setopt(pycurl.POSTFIELDSIZE, len(body))
            setopt(pycurl.POSTFIELDS, body)
        if method == "HEAD":
            setopt(pycurl.NOBODY, 1)
        elif method != ("POST" if body is not None else "GET"):
            setopt(pycurl.CUSTOMREQUEST, method)

    def _take(self) -> pycurl.Curl:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return pycurl.Curl()

    def _give_back(self, handle: pycurl.Curl) -> None:
        handle.reset()  # every option back to its default; the connection stays
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(handle)
                return
        handle.close()

    def clear(self) -> None:
        """Close every kept connection, and end the transfers under way
        within about a second (a long poll waiting for its answer): each
        fails as a request that was sent and got no answer."""
        with self._lock:
            self._cleared += 1
            idle, self._idle = self._idle, []
        for handle in idle:
            handle.close()


def _message(code: int, text: str, errno: int) -> str:
    """libcurl's message, with the system's word for what the socket met
    ("Connection refused"), which libcurl's leaves out."""
    text = text or f"libcurl error {code}"
    return f"{text} ({os.strerror(errno)})" if errno else text


def _reason(status: int, lines: list[bytes]) -> str:
    """The reason phrase of the last status line (after any redirect)."""
    for line in reversed(lines):
        if line.startswith(b"HTTP/"):
            parts = line.decode("latin-1").strip().split(" ", 2)
            if len(parts) == 3:
                return parts[2]
            break
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
