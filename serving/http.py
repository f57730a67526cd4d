"""A small JSON-over-HTTP client that every service's client builds on."""

from __future__ import annotations

from typing import Any

import requests


class ApiError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str, detail: Any = None):
        super().__init__(f"{status}: {message}" + (f" ({detail})" if detail else ""))
        self.status = status
        self.message = message
        self.detail = detail


class Unreachable(Exception):
    """The server could not be contacted at all (refused, timed out, reset)."""


class JsonClient:
    def __init__(self, base_url: str, token: str | None, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        timeout: float | None = None,
    ) -> Any:
        url = f"{self.base_url}{path}"
        try:
            resp = self.session.request(
                method, url, json=json, params=params, timeout=timeout or self.timeout
            )
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach {url}: {exc.__class__.__name__}: {exc}") from exc
        if resp.status_code >= 400:
            try:
                body = resp.json()
                message, detail = body.get("error", resp.reason), body.get("detail")
            except ValueError:
                message, detail = resp.reason or "error", resp.text[:200] or None
            raise ApiError(resp.status_code, message, detail)
        if not resp.content:
            return None
        return resp.json()

    def close(self) -> None:
        self.session.close()
