"""The seeker's HTTP clients of its helpers: one session per helper, reused
across pushes, probes and stop requests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from helper.client import HelperClient


class HelperClients:
    """One HTTP session per helper, reused across pushes, that presents the
    helper's current credential (how the helper knows its seeker)."""

    def __init__(
        self,
        credential_for: Callable[[str], str | None],
        timeout: float | tuple[float, float] = 10.0,
        ca_cert: Path | None = None,
    ):
        """`timeout`: seconds, or (to connect, to answer)."""
        self.credential_for = credential_for
        self.timeout = timeout
        self.ca_cert = ca_cert
        self._clients: dict[tuple[str, str], HelperClient] = {}
        self._lock = threading.Lock()  # pushes come from a pool of threads

    def __call__(self, helper: dict) -> HelperClient:
        key = (helper["url"], helper["helper_id"])
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = HelperClient(helper["url"], None, self.timeout, self.ca_cert)
                self._clients[key] = client
        credential = self.credential_for(helper["helper_id"])
        if credential:
            client.authorize(credential)
        return client
