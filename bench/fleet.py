"""`python -m bench.fleet`: many helpers in one process, for the dispatch,
idle and join benchmarks.

Each helper is the real helper stack less its own HTTP server and Docker:
`helper.executor.Executor` (slots, the "running" report to the seeker),
`helper.outbox.Outbox` (fsync'd entries, the result POSTed to the channel,
the final event to the seeker), with a runtime whose containers succeed at
once.

Push mode (the default): one WSGI server serves every helper's REST API
(`helper.app.create_app`: credential check, validation) under /h/<n>/
(werkzeug's DispatcherMiddleware); each registers with the seeker at that
URL, and the seeker pushes its work there and probes it.

Pull mode (`--pull`): no server. Each helper registers with mode "pull" and
long-polls `POST /api/v1/helpers/<id>/work` on a connection of its own, as
helper/agent.py does (`_poll_loop`, `poll_once`, `handle`), but on the
fleet's one event loop rather than a thread each (bench/polls.py): it
takes each offer with `Executor.take()`, acknowledged by an "accepted"
event whose answer says whether this process runs it; refuses what it
cannot take ("push_failed"); stops what the seeker says to stop.

Every helper beats as helper/agent.py does (`beat`): as often as the seeker
asks (or every --heartbeat seconds, if given and more often), each on its
own schedule (bench/heartbeats.py); a beat is light (POST
/api/v1/helpers/<id>/heartbeat) but the first and one every 60 beats, which
are full registrations; a pulling helper whose polls go through sends no
light beat (it counts as one beaten: its polls stood in), nor does a pushed
helper whose reports reached the seeker within the interval (its next beat
is then due an interval after its last report, and one goes at least every
4 intervals: helper/beats.py `quiet_left`). Joining:
every helper registers at once, --beat-threads at a time. When the helper's
heartbeat changes, `FleetHelper.beat` (bench/fleet_helpers.py) must change
with it.

As real helpers do, each joins with the token and then talks to the seeker
with its own credential, in a session of its own (up to 4 keep-alive
connections; a pulling helper's poll has one more); results go to the
channel with each attempt's receipt, through one shared ChannelClient (up
to 64 connections).

Prints "ready" once every helper is registered (and, pulling, polls), then
writes its counters to DATA_DIR/stats.json every 2 s; stops on SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import uuid
from pathlib import Path

from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from bench.fleet_helpers import FleetHelper, PullingHelper
from bench.heartbeats import Counters, Heartbeats
from bench.polls import Polls
from channel.client import ChannelClient
from serving.wsgi import BackgroundServer

STACK = 512 * 1024  # bytes of stack per thread: thousands of them wait here


def not_found(environ, start_response):
    return Response('{"error": "no such helper"}', 404, mimetype="application/json")(
        environ, start_response
    )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet")
    parser.add_argument("--seeker-url", required=True)
    parser.add_argument("--channel-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, required=True, help="push mode: the helpers' server")
    parser.add_argument("--helpers", type=int, default=200)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--threads", type=int, default=16, help="push mode: server threads")
    parser.add_argument("--pull", action="store_true", help="pulling helpers (long polls)")
    parser.add_argument(
        "--poll-wait",
        type=float,
        default=None,
        help="the longest a poll waits (default: as long as the seeker lets it)",
    )
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=None,
        help="seconds between beats (default: as often as the seeker asks)",
    )
    parser.add_argument("--beat-threads", type=int, default=32, help="registrations at once")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    threading.stack_size(STACK)
    run_id = uuid.uuid4().hex[:6]
    counters = Counters()
    stats = Path(args.data_dir) / "stats.json"
    kind = PullingHelper if args.pull else FleetHelper
    base = f"http://127.0.0.1:{args.port}"
    # receipts, not a token; connections for the fleet's many threads
    channel = ChannelClient(args.channel_url, None, timeout=60, pool_size=64)
    helpers = [kind(i, run_id, args, base, channel, counters) for i in range(args.helpers)]
    server = None
    if not args.pull:
        apps = {f"/h/{i}": h.app() for i, h in enumerate(helpers)}
        # the seeker keeps a connection to each helper URL, all to this one server
        server = BackgroundServer(
            DispatcherMiddleware(not_found, apps), "127.0.0.1", args.port, threads=args.threads
        ).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    polls = Polls(args.seeker_url, counters, stop) if args.pull else None

    def joined(i: int) -> None:
        helpers[i].outbox.start()
        if polls is not None:
            polls.start(helpers[i])

    beats = Heartbeats(
        len(helpers),
        lambda i: helpers[i].beat(),
        lambda i: helpers[i].next_in,
        args.beat_threads,
        counters,
    )
    beats.join(joined)
    counters.write(stats)
    print("ready", flush=True)
    while not stop.wait(2):
        counters.write(stats)
    beats.stop()
    counters.write(stats)
    for h in helpers:
        h.outbox.stop()
    if server is not None:
        server.stop()


if __name__ == "__main__":
    main()
