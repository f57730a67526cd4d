"""One HTTP exchange as the services make it, with nothing behind it: the
floor under the dispatch benchmark's CPU per task (bench/dispatch.py).

`python -m bench.exchange PORT` serves one route the way every service
serves its routes (serving.flaskapp.base_app: the token checked, the JSON
body validated by a pydantic model, on serving.wsgi's cheroot server) and
answers without touching a database. `measure(port, n)` sends it `n`
result-sized POSTs with serving.http.JsonClient, the services' client, and
returns the client's and the server's CPU per exchange."""

from __future__ import annotations

import sys
import time

import psutil
from pydantic import BaseModel

TOKEN = "bench-exchange-token"
BODY = {
    "task_id": "t" * 32,
    "helper_id": "h" * 32,
    "status": "succeeded",
    "exit_code": 0,
    "output": "x" * 200,
}


class Body(BaseModel):
    task_id: str
    helper_id: str
    status: str
    exit_code: int
    output: str


def app():
    from serving.flaskapp import base_app
    from serving.operations import operation

    served = base_app("bench.exchange", "exchange", TOKEN)

    @served.post("/api/v1/exchange")
    @operation({201: ({"type": "object"}, "taken")}, body=Body)
    def exchange(body: Body):
        """One exchange"""
        return {"task_id": body.task_id, "stored": True}, 201

    return served


def measure(port: int, server: psutil.Process, n: int) -> tuple[float, float]:
    """(client, server) CPU seconds per exchange over `n` exchanges, after
    a few to open the connection."""
    from bench.common import cpu_seconds
    from serving.http import JsonClient

    client = JsonClient(f"http://127.0.0.1:{port}", TOKEN)
    try:
        for _ in range(20):
            client.request("POST", "/api/v1/exchange", json=BODY)
        mine, theirs = time.thread_time(), cpu_seconds(server)
        for _ in range(n):
            client.request("POST", "/api/v1/exchange", json=BODY)
        return (time.thread_time() - mine) / n, (cpu_seconds(server) - theirs) / n
    finally:
        client.close()


if __name__ == "__main__":
    from serving.wsgi import BackgroundServer, wait_for_signal

    server = BackgroundServer(app(), "127.0.0.1", int(sys.argv[1]), threads=8).start()
    wait_for_signal()
    server.stop()
