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
heartbeat changes, `FleetHelper.beat` must change with it.

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
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from bench.heartbeats import Counters, Heartbeats
from bench.polls import Polls
from channel.client import ChannelClient
from channel.models import ResultStatus
from helper.agent import RUNNING_REPORT_DELAY
from helper.app import create_app
from helper.beats import next_beat_in, quiet_left
from helper.executor import Executor
from helper.models import Assignment
from helper.outbox import Outbox
from helper.poller import POLL_SLACK
from helper.runtime import RunOutcome
from seeker.client import SeekerClient
from serving.errors import Busy, Conflict, Forbidden, NotFound
from serving.http import ApiError, Unreachable
from serving.wsgi import BackgroundServer

log = logging.getLogger("bench.fleet")
GIB = 1024**3
REFRESH_BEATS = 60  # a full registration at least every 60 beats (helper/agent.py)
STACK = 512 * 1024  # bytes of stack per thread: thousands of them wait here


class InstantRuntime:
    """A container runtime whose every container succeeds at once, silently."""

    def ping(self) -> None:
        pass

    def ours(self, helper_id: str) -> list:
        return []

    def stop(self, name: str) -> bool:
        return False

    def run(
        self, spec, on_started=lambda: None, on_pulling=lambda: None, on_exited=lambda: None
    ) -> RunOutcome:
        started = datetime.now(timezone.utc)
        on_started()
        on_exited()
        return RunOutcome(ResultStatus.SUCCEEDED, 0, started_at=started, finished_at=started)


class FleetHelper:
    """A pushed helper: the seeker reaches it at `url` (this process's server)."""

    mode = "push"

    def __init__(self, i: int, run_id: str, args, base_url: str, channel, counters: Counters):
        self.helper_id = f"fleet-{run_id}-{i:04d}"
        self.name = f"fleet-{run_id}-{i:04d}"
        self.url = f"{base_url}/h/{i}"
        self.slots = args.slots
        self.boot_id = uuid.uuid4().hex
        self.fixed = args.heartbeat  # --heartbeat: beat at least this often
        self.every = args.heartbeat or 15.0
        self.next_in = self.every  # seconds to its next beat (helper/agent.py `_heartbeat`)
        # when the seeker last took a report of this (pushed) helper, and last
        # answered its beat or registration (monotonic; helper/agent.py `beat`)
        self.heard_at: float | None = None
        self.beat_at: float | None = None
        self.registered_at = -1.0
        self.token = args.token
        self.counters = counters
        # its own session: it joins with the token, then sends its credential
        self.seeker = SeekerClient(args.seeker_url, args.token, timeout=60, pool_size=4)
        self.credentials: tuple[str, ...] = ()
        self.channel = channel
        self.outbox = Outbox(
            Path(args.data_dir) / f"h{i}" / "outbox",
            {
                "result": lambda e: self.channel.post_result(
                    dict(e["result"], sent_at=datetime.now(timezone.utc).isoformat()),
                    receipt=e["receipt"],
                ),
                "event": lambda p: self.report(p["task_id"], p["event"]),
            },
        )
        self.executor = Executor(
            InstantRuntime(),
            self.outbox,
            self.helper_id,
            self.name,
            args.slots,
            report=self.report,
            boot_id=self.boot_id,
        )
        # as helper/agent.py: a run that ends within this is reported once, finished
        self.executor.running_report_delay = RUNNING_REPORT_DELAY

    def report(self, task_id: str, event: dict) -> dict:
        """helper/agent.py `_report`: the seeker counts it as a contact."""
        answer = self.seeker.report(task_id, event)
        if self.mode == "push":
            self.heard_at = time.monotonic()
        return answer

    def app(self):
        """This helper's REST API, as `helper start` serves it."""
        return create_app(
            executor=self.executor,
            token=self.token,
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

    def register(self) -> bool:
        """A full registration (helper/agent.py `_register`)."""
        answer = self.seeker.register_helper(
            {
                "helper_id": self.helper_id,
                "name": self.name,
                "mode": self.mode,
                "url": self.url,
                "slots": self.slots,
                "resources": self.resources(),
                "boot_id": self.boot_id,
                "running": self.executor.running_keys(),
                "heartbeat": self.fixed,  # the seeker asks no longer apart than this
            }
        )
        if answer.get("credential"):
            self.credentials = (answer["credential"],)
            self.authorize(answer["credential"])
        self.registered_at = self.beat_at = time.monotonic()
        self.adopt_interval(answer)
        self.stop_runs(answer.get("stop") or [])
        return True

    def beat(self) -> bool:
        """helper/agent.py `beat`: a light heartbeat, or a full registration
        the first time and every 60 beats (the simulated resources do not
        change), or none while its reports reach the seeker."""
        stale = time.monotonic() - self.registered_at > self.every * REFRESH_BEATS
        if self.registered_at < 0 or stale:
            return self.register()
        quiet = quiet_left(time.monotonic(), self.every, self.heard_at, self.beat_at)
        if quiet is not None:
            self.next_in = quiet  # its reports told the seeker it is alive
            self.counters.add("beats_left_out")
            return True
        beat = {"boot_id": self.boot_id, "running": self.executor.running_keys()}
        try:
            answer = self.seeker.heartbeat(self.helper_id, {**beat, "heartbeat": self.fixed})
        except ApiError as exc:
            if exc.status in (401, 404, 409):
                return self.register()
            raise
        self.beat_at = time.monotonic()
        self.counters.add("light_beats")
        self.adopt_interval(answer)
        self.stop_runs(answer.get("stop") or [])
        return True

    def adopt_interval(self, answer: dict) -> None:
        """Beat as often as the seeker asks (or as --heartbeat, if more often)."""
        asked = answer.get("heartbeat") or self.every
        before, self.every = self.every, min(self.fixed, asked) if self.fixed else asked
        self.next_in = next_beat_in(before, self.every)

    def authorize(self, credential: str) -> None:
        self.seeker.authorize(credential)

    def stop_runs(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.executor.cancel(key)
            except NotFound:
                pass  # ended meanwhile


class PullingHelper(FleetHelper):
    """A helper that accepts no connections: it long-polls for its work
    (its poll loop is in bench/polls.py, on the fleet's event loop)."""

    mode = "pull"

    def __init__(self, i: int, run_id: str, args, base_url: str, channel, counters: Counters):
        super().__init__(i, run_id, args, base_url, channel, counters)
        self.url = None
        self.fixed_wait = args.poll_wait  # --poll-wait: the longest a poll waits
        self.asked_wait = 25.0  # what the seeker lets a poll wait (its answers say)
        self.polled_at = -1.0  # when a poll was last answered (monotonic)
        self.credential = ""  # what its poll presents, once registered

    def authorize(self, credential: str) -> None:
        self.seeker.authorize(credential)
        self.credential = credential

    def poll_wait(self) -> float:
        """helper/agent.py `poll_wait_now`."""
        return min(self.fixed_wait, self.asked_wait) if self.fixed_wait else self.asked_wait

    def poll_body(self) -> dict:
        """helper/poller.py: what it runs, what it finished, how long to wait."""
        stopping = self.executor.stopping_keys()
        return {
            "boot_id": self.boot_id,
            "running": [k for k in self.executor.running_keys() if k not in stopping],
            "done": [*self.executor.done_keys(), *stopping],
            "wait": self.poll_wait(),
            "heartbeat": self.fixed,
        }

    def polled(self, work: dict) -> None:
        self.polled_at = time.monotonic()
        self.asked_wait = work.get("wait") or self.asked_wait
        self.adopt_interval(work)

    def beat(self) -> bool:
        """helper/agent.py `beat`: no light heartbeat while its polls go through."""
        stale = time.monotonic() - self.registered_at > self.every * REFRESH_BEATS
        polling = time.monotonic() - self.polled_at < self.poll_wait() + POLL_SLACK
        if self.registered_at >= 0 and not stale and polling and not self.fixed:
            return True
        return super().beat()

    def handle(self, work: dict) -> None:
        """helper/agent.py `handle`: stop what the seeker says to stop, take
        each offer (acknowledged before it runs), or say why not."""
        self.stop_runs(work.get("stop") or [])
        for item in work.get("assignments") or []:
            a = Assignment.model_validate(item)
            try:
                if self.executor.take(a, self.acknowledge):
                    self.counters.add("offers_taken")
            except (Busy, Forbidden, Conflict) as exc:
                self.counters.add("offers_refused")
                self.refuse(a, exc)
            except (Unreachable, ApiError):
                pass  # it is handed out again

    def acknowledge(self, a: Assignment) -> bool:
        event = {
            "helper_id": self.helper_id,
            "attempt": a.attempt,
            "state": "accepted",
            "boot_id": self.boot_id,
        }
        return bool((self.seeker.report(a.task_id, event) or {}).get("run"))

    def refuse(self, a: Assignment, why: Exception) -> None:
        event = {
            "helper_id": self.helper_id,
            "attempt": a.attempt,
            "state": "push_failed",
            "error": f"{self.name} refused it: {why}",
        }
        try:
            self.seeker.report(a.task_id, event)
        except (Unreachable, ApiError):
            pass  # it expires on the seeker's side


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
