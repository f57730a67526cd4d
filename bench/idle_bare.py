"""The idle benchmark's baseline (bench/idle.py), two processes:

`python -m bench.idle_bare serve PORT`: a bare Flask app with one route,
served by `serving.wsgi.BackgroundServer` with 16 threads (as the seeker
is), until SIGTERM.

`python -m bench.idle_bare hold URL N EVERY`: N keep-alive connections to
URL, each sending `GET /healthz` once when it opens and then every EVERY
seconds, the sends spread evenly over the interval, from 8 threads; prints
"ready" once every connection has been answered once."""

from __future__ import annotations

import http.client
import signal
import sys
import threading
import time
from urllib.parse import urlsplit

from flask import Flask

from serving.wsgi import BackgroundServer, wait_for_signal

THREADS = 8


def serve(port: int) -> None:
    app = Flask("bare")

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    server = BackgroundServer(app, "127.0.0.1", port, threads=16).start()
    wait_for_signal()
    server.stop()


def hold(url: str, n: int, every: float) -> None:
    where = urlsplit(url)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    conns = [http.client.HTTPConnection(where.hostname, where.port, timeout=60) for _ in range(n)]
    opened = threading.Barrier(THREADS + 1)

    def get(c: http.client.HTTPConnection) -> None:
        try:
            c.request("GET", "/healthz")
            c.getresponse().read()
        except (OSError, http.client.HTTPException):
            c.close()  # it reconnects on the next request

    def keep(k: int) -> None:
        mine = conns[k::THREADS]
        for c in mine:
            get(c)
        opened.wait()
        start = time.monotonic()
        for beat in range(1, 1_000_000):
            for j, c in enumerate(mine):
                due = start + every * (beat + j / max(1, len(mine)))
                if stop.wait(max(0.0, due - time.monotonic())):
                    return
                get(c)

    threads = [threading.Thread(target=keep, args=(k,), daemon=True) for k in range(THREADS)]
    for t in threads:
        t.start()
    opened.wait()
    print("ready", flush=True)
    stop.wait()


if __name__ == "__main__":
    threading.stack_size(512 * 1024)
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        hold(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
