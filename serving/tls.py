"""TLS: a server's certificate and key, and what a client says when a TLS
connection fails (the usual cause: it does not trust the server's CA)."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from cheroot.ssl.builtin import BuiltinSSLAdapter

log = logging.getLogger(__name__)

CA_HINT = "pass --ca-cert with the CA that signed the server's certificate"
TLS_HANDSHAKE = 0x16  # the first byte a TLS client sends
PLAIN_HTTP_READ = 64 * 1024  # bytes read from a plain-HTTP client, at most
PLAIN_HTTP_WAIT = 1.0  # seconds spent on a plain-HTTP client, at most


class TlsSetupError(Exception):
    """A certificate or key that cannot be used; says which file and why."""


@dataclass(frozen=True)
class ServerCert:
    """The PEM certificate (its chain after it, if any) and private key a
    server presents."""

    cert: Path
    key: Path

    def adapter(self) -> BuiltinSSLAdapter:
        """cheroot's TLS adapter for this pair (TLS 1.2 at least)."""
        for what, path in (("certificate", self.cert), ("key", self.key)):
            try:
                Path(path).read_bytes()
            except OSError as exc:
                raise TlsSetupError(f"TLS {what} {path}: {exc.strerror}") from None

        def no_password():  # rather than OpenSSL asking on the terminal
            raise TlsSetupError(f"TLS key {self.key} is encrypted: give an unencrypted key")

        try:
            adapter = _Adapter(str(self.cert), str(self.key), private_key_password=no_password)
        except (ssl.SSLError, ValueError) as exc:
            raise TlsSetupError(
                f"TLS certificate {self.cert} and key {self.key} cannot be used "
                f"(PEM files, the key matching the certificate?): {exc}"
            ) from None
        adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
        return adapter


class _Adapter(BuiltinSSLAdapter):
    """cheroot's adapter with the handshake moved to `handshake()`, which
    serving.wsgi calls on a worker thread: cheroot's `wrap()` shakes hands on
    the thread that accepts connections, where one client that connects and
    sends nothing stops the server from accepting anyone else until the
    socket times out. And a client speaking plain HTTP gets a JSON 400 that
    says to use https:// (cheroot's own answer never arrives: the failed
    handshake has already closed the socket, so the client sees a reset)."""

    def wrap(self, sock):
        return sock, {}

    def handshake(self, sock: socket.socket, peer) -> ssl.SSLSocket | None:
        """The TLS socket over `sock`, or None (and `sock` closed) when the
        client did not complete a handshake."""
        try:
            first = sock.recv(1, socket.MSG_PEEK)
            if first and first[0] != TLS_HANDSHAKE:
                log.info("client %s spoke plain HTTP to the TLS port: answered 400", peer)
                _answer_plain_http(sock)
                return None
            return self.context.wrap_socket(sock, server_side=True)
        except Exception as exc:  # one escaping from a worker would stop the whole server
            log.info("TLS handshake with %s failed: %s", peer, exc)
            sock.close()
            return None


def _answer_plain_http(sock: socket.socket) -> None:
    body = json.dumps(
        {"error": "this server speaks HTTPS only", "detail": "use an https:// URL for it"}
    ).encode()
    head = (
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    deadline = time.monotonic() + PLAIN_HTTP_WAIT
    budget = PLAIN_HTTP_READ

    def read() -> bytes:
        nonlocal budget
        sock.settimeout(max(0.0, deadline - time.monotonic()))
        chunk = sock.recv(min(4096, budget)) if budget > 0 else b""
        budget -= len(chunk)
        return chunk

    try:
        request = b""
        while b"\r\n\r\n" not in request and (chunk := read()):
            request += chunk
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        while read():  # until the client closes: unread data would reset it
            pass
    except OSError:
        pass
    finally:
        sock.close()


def explain(exc: Exception, url: str) -> str:
    """One line on a failed TLS connection to `url`, with what to do: from
    requests' message (Python's ssl) or libcurl's."""
    text = str(exc)
    unverified = any(
        words in text
        for words in (
            "CERTIFICATE_VERIFY_FAILED",
            "certificate verify failed",
            "SSL certificate problem",  # libcurl's
            "verify result",  # libcurl's "SSL certificate OpenSSL verify result"
        )
    )
    mismatch = (unverified and ("mismatch" in text or "doesn't match" in text)) or (
        "subject name" in text and "match" in text  # libcurl's
    )
    if mismatch:
        return (
            f"certificate of {url} is not valid for its host name: the server's "
            "certificate must name the host (or IP address) in the URL"
        )
    if unverified:
        return f"certificate verify failed for {url}: {CA_HINT}"
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return f"{url} does not speak TLS: is it an http:// address?"
    return f"TLS connection to {url} failed: {text}"
