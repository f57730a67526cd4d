"""The simulated fleet's helpers (bench/fleet.py hosts them): each the real
helper code less Docker and its own HTTP server, registering, beating and,
pulling, handling its polls' answers as helper/agent.py does."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from bench.heartbeats import Counters
from channel.models import ResultStatus
from helper.agent import RUNNING_REPORT_DELAY
from helper.app import create_app
from helper.beats import next_beat_in, quiet_left
from helper.executor import Executor
from helper.models import Assignment
from helper.outbox import Outbox
from helper.poller import POLL_SLACK
from helper.runs import RunOutcome
from seeker.client import SeekerClient
from serving.errors import Busy, Conflict, Forbidden, NotFound
from serving.http import ApiError, Unreachable

log = logging.getLogger("bench.fleet")
GIB = 1024**3
REFRESH_BEATS = 60  # a full registration at least every 60 beats (helper/agent.py)


class InstantRuntime:
    """A container runtime whose every container succeeds at once, silently;
    but `sleep N` takes N seconds (bench/backlog.py fills slots with it)."""

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
        if spec.command[:1] == ["sleep"] and len(spec.command) == 2:
            time.sleep(float(spec.command[1]))
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

    def register(self) -> bool:
        """A full registration, after which its client lets its connection
        go. Its polls are its heartbeats (on the fleet's event loop), so the
        client serves only the registrations, every 5 minutes, and the seeker
        closes an idle connection after 60 s anyway; but the fleet holds
        every helper in one process, where each kept client would hold 3
        descriptors (its socket, and two eventfds that libcurl 8.23 keeps
        per handle): 5,000 pulling helpers then need more than 20,000, the
        hard limit on these machines."""
        try:
            return super().register()
        finally:
            self.seeker.close()

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
