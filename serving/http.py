"""A small JSON-over-HTTP client that every service's client builds on."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from json import dumps, loads
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import certifi
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from serving.curl import CurlTransport, TransportError
from serving.tls import explain

DOWNLOAD_BLOCK = 1024 * 1024
POOL_SIZE = 10  # connections kept open to one server, as requests keeps
JSON_HEADERS = {"Accept": "application/json", "User-Agent": "seeker-client"}


class ApiError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str, detail: Any = None):
        super().__init__(f"{status}: {message}" + (f" ({detail})" if detail else ""))
        self.status = status
        self.message = message
        self.detail = detail


class Unreachable(Exception):
    """The server could not be contacted at all (refused, timed out, reset).
    `not_sent`: the request surely did not reach it (no connection was made),
    so another replica of the service may be asked instead."""

    def __init__(self, message: str, not_sent: bool = False):
        super().__init__(message)
        self.not_sent = not_sent


def not_sent(exc: requests.RequestException) -> bool:
    """Whether a failed request surely never reached the server: no
    connection (refused, unresolvable, no answer to the connect in time)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        # a connection reset or dropped once the request was on its way is
        # also a ConnectionError: only a failed connect is surely not sent
        reason = exc.args[0] if exc.args else None
        return isinstance(getattr(reason, "reason", reason), NewConnectionError)
    return False


def split_urls(value: str) -> list[str]:
    """'http://a:7070, http://b:7070' -> ['http://a:7070', 'http://b:7070']."""
    urls = [u.strip().rstrip("/") for u in value.split(",") if u.strip()]
    if not urls:
        raise ValueError(f"no URL in {value!r}")
    return urls


class TlsFailure(Unreachable):
    """A TLS connection failed: the server's certificate is not signed by a
    trusted CA (see `ca_cert`) or does not name the host, or the server does
    not speak TLS. The message says which, in one line."""


class JsonClient:
    """`base_url` is one server, or several separated by commas (replicas of
    one service, such as several seekers on one database): a request that
    cannot reach the current one goes to the next, which becomes current.
    `ca_cert`: the CA (a PEM file) that https:// servers' certificates must
    be signed by; absent: REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, else the CAs
    requests trusts by default (certifi's). `pool_size`: connections kept
    open to each server, for as many threads at once.

    JSON requests (`request`) go through libcurl (serving/curl.py), without
    requests' layer: its per-request work (merging the session's settings,
    cookies, hooks, the Response it builds) was half of a request's CPU at
    the client (bench/findings.md, 21), and urllib3's beneath it 0.2-0.3 ms
    more than libcurl's (38). Streamed bodies and answers (`raw`,
    `download`) go through requests.

    The environment is read once, here, not at every request as requests
    does by default (trust_env): the proxy for each server (HTTP_PROXY,
    HTTPS_PROXY, ALL_PROXY, NO_PROXY) and the CA bundle. A ~/.netrc is not
    read: its password would replace the bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        timeout: float | tuple[float, float] = 10.0,
        ca_cert: str | Path | None = None,
        pool_size: int = POOL_SIZE,
    ):
        self.base_urls = split_urls(base_url)
        self._current = 0
        self.timeout = timeout
        self.pool_size = pool_size
        self._session: requests.Session | None = None  # made at the first `raw`
        self._session_lock = threading.Lock()
        self.proxies = {base: requests.utils.get_environ_proxies(base) for base in self.base_urls}
        env_ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self.verify: str | bool = str(ca_cert) if ca_cert else env_ca or True
        self._pools = {base: self._pool_for(base, pool_size) for base in self.base_urls}
        self._headers = dict(JSON_HEADERS)
        if token:
            self.authorize(token)

    @property
    def session(self) -> requests.Session:
        """What streamed requests (`raw`) go through, made when first needed:
        a seeker's client of each of its helpers never makes one."""
        with self._session_lock:
            if self._session is None:
                session = requests.Session()
                session.trust_env = False  # read once, in __init__
                for scheme in ("http://", "https://"):
                    session.mount(scheme, HTTPAdapter(pool_maxsize=self.pool_size))
                session.headers.update({"Authorization": self._headers.get("Authorization")})
                self._session = session
            return self._session

    def use_transport(self, base: str, transport) -> None:
        """Send the JSON requests to `base` through `transport` (anything
        with CurlTransport's `send` and `clear`): tests hand them to an app
        in their own process."""
        self._pools[base] = transport

    def _pool_for(self, base: str, size: int) -> CurlTransport:
        """The connections JSON requests to `base` use: through the proxy
        the environment names for it, if any."""
        ca = certifi.where() if self.verify is True else str(self.verify)
        proxy = requests.utils.select_proxy(base, self.proxies[base]) or ""
        return CurlTransport(proxy, ca, os.path.isdir(ca), size)

    @property
    def base_url(self) -> str:
        """The server requests go to now."""
        return self.base_urls[self._current]

    def authorize(self, secret: str) -> None:
        """Send `secret` as the bearer of every request from now on."""
        self._headers = {**self._headers, "Authorization": f"Bearer {secret}"}
        with self._session_lock:
            if self._session is not None:
                self._session.headers["Authorization"] = f"Bearer {secret}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        timeout: float | tuple[float, float] | None = None,
        headers: dict | None = None,
    ) -> Any:
        """A JSON request; the decoded JSON answer (None when empty). ApiError
        for a 4xx or 5xx answer, Unreachable when no server can be reached
        (see `raw` for which requests go to the next server)."""
        body = None if json is None else dumps(json, allow_nan=False).encode()
        if params:
            kept = {k: v for k, v in params.items() if v is not None}
            path = f"{path}?{urlencode(kept, doseq=True)}"
        sent = {**self._headers, **(headers or {})}
        if body is not None:
            sent["Content-Type"] = "application/json"

        def send(base: str) -> Any:
            url = f"{base}{path}"
            try:
                status, reason, data = self._pools[base].send(
                    method, url, body, sent, timeout or self.timeout
                )
            except TransportError as exc:
                if exc.tls:
                    raise TlsFailure(explain(exc, base)) from exc
                raise Unreachable(f"cannot reach {url}: {exc}", not_sent=exc.not_sent) from exc
            if status >= 400:
                raise _api_error(status, reason, data)
            return loads(data) if data else None

        return self._each_server(method, send)

    def raw(self, method: str, path: str, *, timeout=None, **kwargs) -> requests.Response:
        """Any request (a streamed body or answer too): ApiError for a 4xx or
        5xx answer, Unreachable when no server can be reached. A request
        that could not be sent to one server (refused, no connection in
        time) is sent to the next; one that may have reached a server (reset
        or timed out once sent) is not sent again, but a GET or HEAD."""

        def send(base: str) -> requests.Response:
            return self._send(base, method, path, timeout, kwargs)

        return self._each_server(method, send)

    def _each_server(self, method: str, send: Callable[[str], Any]) -> Any:
        """`send` to the current server, then to the next ones while the
        request may be sent again (see `raw`)."""
        first = self._current
        for n in range(len(self.base_urls)):
            index = (first + n) % len(self.base_urls)
            try:
                answer = send(self.base_urls[index])
            except Unreachable as exc:
                again = exc.not_sent or method in ("GET", "HEAD")  # safe to ask another
                if not again or n == len(self.base_urls) - 1:
                    raise
                continue
            except ApiError:
                self._current = index  # it answered: it is up
                raise
            self._current = index
            return answer
        raise AssertionError("unreachable")  # the loop returns or raises

    def _send(self, base: str, method: str, path: str, timeout, kwargs) -> requests.Response:
        url = f"{base}{path}"
        try:
            resp = self.session.request(
                method,
                url,
                timeout=timeout or self.timeout,
                verify=self.verify,
                proxies=self.proxies[base],
                **kwargs,
            )
        except requests.exceptions.SSLError as exc:
            raise TlsFailure(explain(exc, base)) from exc
        except requests.RequestException as exc:
            raise Unreachable(
                f"cannot reach {url}: {exc.__class__.__name__}: {exc}", not_sent=not_sent(exc)
            ) from exc
        if resp.status_code >= 400:
            try:
                raise _api_error(resp.status_code, resp.reason, resp.content)
            finally:
                resp.close()
        return resp

    def download(self, path: str, dest: str | Path) -> Path:
        """Stream an answer's body to `dest`; a download cut short leaves
        nothing there."""
        dest = Path(dest)
        part = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        try:
            with self.raw("GET", path, stream=True) as resp, open(part, "wb") as f:
                for block in resp.iter_content(DOWNLOAD_BLOCK):
                    f.write(block)
            os.replace(part, dest)
        except requests.RequestException as exc:
            raise Unreachable(f"download of {path} cut short: {exc}") from exc
        finally:
            part.unlink(missing_ok=True)
        return dest

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        for pool in self._pools.values():
            pool.clear()


def _api_error(status: int, reason: str | None, body: bytes) -> ApiError:
    """The error a 4xx or 5xx answer stands for: the service's JSON error
    (`error`, `detail`), else the status line and the start of the body."""
    try:
        answer = loads(body)
        return ApiError(status, answer.get("error", reason), answer.get("detail"))
    except (ValueError, AttributeError):
        text = body[:200].decode("utf-8", "replace")
        return ApiError(status, reason or "error", text or None)
