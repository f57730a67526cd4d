"""`python -m bench.fleet`: many helpers in one process, for the dispatch
benchmark.

Each helper is the real helper stack less its own HTTP server and Docker:
`helper.executor.Executor` (slots, the "running" report to the seeker),
`helper.outbox.Outbox` (fsync'd entries, the result POSTed to the channel,
the final event to the seeker) and `helper.app.create_app` (the helper's
REST API, credential check and validation), with a runtime whose containers
succeed at once. One WSGI server serves every helper's app, under
/h/<n>/ (werkzeug's DispatcherMiddleware); each registers with the seeker at
that URL and re-registers every 15 s, as a helper's heartbeat does.

As real helpers do, each joins with the token and then talks to the seeker
with its own credential, in a session of its own (up to 4 keep-alive
connections); results go to the channel with each attempt's receipt, through
one shared ChannelClient (up to 64 connections).

Prints "ready" once every helper is registered; stops on SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

from requests.adapters import HTTPAdapter
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from channel.client import ChannelClient
from channel.models import ResultStatus
from helper.app import create_app
from helper.executor import Executor
from helper.outbox import Outbox
from helper.runtime import RunOutcome
from seeker.client import SeekerClient
from serving.wsgi import BackgroundServer

GIB = 1024**3


class InstantRuntime:
    """A container runtime whose every container succeeds at once, silently."""

    def ping(self) -> None:
        pass

    def ours(self, helper_id: str) -> list:
        return []

    def stop(self, name: str) -> bool:
        return False

    def run(self, spec, on_started=lambda: None, on_pulling=lambda: None) -> RunOutcome:
        started = datetime.now(timezone.utc)
        on_started()
        return RunOutcome(ResultStatus.SUCCEEDED, 0, started_at=started, finished_at=started)


class FleetHelper:
    def __init__(self, i: int, run_id: str, args, base_url: str, channel):
        self.helper_id = f"fleet-{run_id}-{i:04d}"
        self.name = f"fleet-{run_id}-{i:04d}"
        self.url = f"{base_url}/h/{i}"
        self.slots = args.slots
        self.boot_id = uuid.uuid4().hex
        # its own session: it joins with the token, then sends its credential
        self.seeker = pooled(SeekerClient(args.seeker_url, args.token, timeout=60), 4)
        self.credentials: tuple[str, ...] = ()
        self.channel = channel
        self.outbox = Outbox(
            Path(args.data_dir) / f"h{i}" / "outbox",
            {
                "result": lambda e: self.channel.post_result(
                    dict(e["result"], sent_at=datetime.now(timezone.utc).isoformat()),
                    receipt=e["receipt"],
                ),
                "event": lambda p: self.seeker.report(p["task_id"], p["event"]),
            },
        )
        self.executor = Executor(
            InstantRuntime(),
            self.outbox,
            self.helper_id,
            self.name,
            args.slots,
            report=self.seeker.report,
            boot_id=self.boot_id,
        )
        self.app = create_app(
            executor=self.executor,
            token=args.token,
            seeker_credentials=lambda: self.credentials,
            describe=self.describe,
        )

    def resources(self) -> dict:
        return {"cpus": 16.0, "memory_total": 64 * GIB, "memory_available": 64 * GIB, "gpus": []}

    def describe(self) -> dict:
        return {
            "helper_id": self.helper_id,
            "name": self.name,
            "url": self.url,
            "boot_id": self.boot_id,
            "outbox": self.outbox.pending(),
            "resources": self.resources(),
        }

    def register(self) -> None:
        answer = self.seeker.register_helper(
            {
                "helper_id": self.helper_id,
                "name": self.name,
                "url": self.url,
                "slots": self.slots,
                "resources": self.resources(),
                "boot_id": self.boot_id,
                "running": self.executor.running_keys(),
            }
        )
        if answer.get("credential"):
            self.credentials = (answer["credential"],)
            self.seeker.authorize(answer["credential"])


def pooled(client, size: int = 64):
    """A client whose session keeps up to `size` connections, for many threads."""
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=size)
    client.session.mount("http://", adapter)
    return client


def not_found(environ, start_response):
    return Response('{"error": "no such helper"}', 404, mimetype="application/json")(
        environ, start_response
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet")
    parser.add_argument("--seeker-url", required=True)
    parser.add_argument("--channel-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--helpers", type=int, default=200)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    run_id = uuid.uuid4().hex[:6]
    base = f"http://127.0.0.1:{args.port}"
    channel = pooled(ChannelClient(args.channel_url, None, timeout=60))  # receipts, not a token
    helpers = [FleetHelper(i, run_id, args, base, channel) for i in range(args.helpers)]
    app = DispatcherMiddleware(not_found, {f"/h/{i}": h.app for i, h in enumerate(helpers)})
    # the seeker keeps a connection to each helper URL, all to this one server
    server = BackgroundServer(app, "127.0.0.1", args.port, threads=args.threads).start()
    for h in helpers:
        h.outbox.start()
        h.register()
    print("ready", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(15):  # the heartbeat: fresh registrations
        for h in helpers:
            try:
                h.register()
            except Exception as exc:  # keep beating; the seeker may be busy
                logging.warning("registration of %s failed: %s", h.name, exc)
    for h in helpers:
        h.outbox.stop()
    server.stop()


if __name__ == "__main__":
    main()
