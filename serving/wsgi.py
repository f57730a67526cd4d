"""Serving a Flask app with waitress (a production WSGI server), in the
foreground or on a background thread."""

from __future__ import annotations

import logging
import signal
import threading

from waitress import wasyncore
from waitress.server import create_server

log = logging.getLogger(__name__)


CONNECTION_LIMIT = 4096


class BackgroundServer:
    """A waitress server on its own thread; `port=0` picks a free port."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 8):
        self._server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="seeker",
            clear_untrusted_proxy_headers=True,
            # every helper keeps a keep-alive connection to the seeker (its
            # heartbeat beats the idle timeout): waitress's default of 100
            # would stop a seeker with a bigger fleet from accepting any more
            connection_limit=CONNECTION_LIMIT,
        )
        self.host = host
        self.port = self._server.effective_port
        self._thread = threading.Thread(target=self._run, name=f"wsgi-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:  # closed while polling
            pass

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, close open (keep-alive) connections, finish the
        requests in flight, and end the loop thread."""
        server = self._server
        server.task_dispatcher.shutdown(timeout=5)
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        self._thread.join(timeout=5)


def wait_for_signal() -> int:
    """Block until SIGINT or SIGTERM; return the signal number."""
    got = threading.Event()
    received = []

    def _handler(signum, _frame):
        received.append(signum)
        got.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handler)
    got.wait()
    return received[0]
