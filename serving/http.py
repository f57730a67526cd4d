"""A small JSON-over-HTTP client that every service's client builds on."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from serving.tls import explain

DOWNLOAD_BLOCK = 1024 * 1024


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
    requests trusts by default.

    The environment is read once, here, not at every request as requests
    does by default (trust_env): the proxy for each server (HTTP_PROXY,
    HTTPS_PROXY, ALL_PROXY, NO_PROXY) and the CA bundle. That lookup was a
    third of a request's CPU. A ~/.netrc is not read: its password would
    replace the bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        timeout: float = 10.0,
        ca_cert: str | Path | None = None,
    ):
        self.base_urls = split_urls(base_url)
        self._current = 0
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # read once, below
        self.proxies = {base: requests.utils.get_environ_proxies(base) for base in self.base_urls}
        env_ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self.verify: str | bool = str(ca_cert) if ca_cert else env_ca or True
        if token:
            self.authorize(token)

    @property
    def base_url(self) -> str:
        """The server requests go to now."""
        return self.base_urls[self._current]

    def authorize(self, secret: str) -> None:
        """Send `secret` as the bearer of every request from now on."""
        self.session.headers["Authorization"] = f"Bearer {secret}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        timeout: float | None = None,
        headers: dict | None = None,
    ) -> Any:
        """A JSON request; the decoded JSON answer (None when empty)."""
        resp = self.raw(method, path, json=json, params=params, timeout=timeout, headers=headers)
        if not resp.content:
            return None
        return resp.json()

    def raw(self, method: str, path: str, *, timeout=None, **kwargs) -> requests.Response:
        """Any request (a streamed body or answer too): ApiError for a 4xx or
        5xx answer, Unreachable when no server can be reached. A request
        that could not be sent to one server (refused, reset, no connection
        in time) is sent to the next; one that may have reached a server is
        not sent again."""
        first = self._current
        for n in range(len(self.base_urls)):
            index = (first + n) % len(self.base_urls)
            try:
                resp = self._send(self.base_urls[index], method, path, timeout, kwargs)
            except Unreachable as exc:
                again = exc.not_sent or method in ("GET", "HEAD")  # safe to ask another
                if not again or n == len(self.base_urls) - 1:
                    raise
                continue
            except ApiError:
                self._current = index  # it answered: it is up
                raise
            self._current = index
            return resp
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
                body = resp.json()
                message, detail = body.get("error", resp.reason), body.get("detail")
            except ValueError:
                message, detail = resp.reason or "error", resp.text[:200] or None
            finally:
                resp.close()
            raise ApiError(resp.status_code, message, detail)
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
        self.session.close()
