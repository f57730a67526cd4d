"""A helper process: identity, registration with the seeker, the executor,
the outbox and the HTTP server, wired together."""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from channel.client import ChannelClient
from helper.app import create_app
from helper.beats import LIGHT, REFRESH_BEATS, next_beat_in, quiet_left, shape_of
from helper.config import CredentialFile, HelperConfig, helper_id
from helper.executor import Executor, remove_spill
from helper.inputs import InputCache
from helper.metrics import HelperMetrics
from helper.outbox import Outbox
from helper.poller import POLL_SLACK, PullMode
from helper.resources import host_resources
from helper.runtime import DockerRuntime
from seeker.client import SeekerClient
from serving.clock import Clock, utc_now
from serving.errors import NotFound
from serving.http import ApiError, Unreachable
from serving.principals import ROTATION_GRACE
from serving.wsgi import BackgroundServer

log = logging.getLogger(__name__)


RUNNING_REPORT_DELAY = 0.5  # seconds: see Executor.running_report_delay


class HelperAgent(PullMode):
    def __init__(self, cfg: HelperConfig, runtime=None, clock: Clock = utc_now):
        self.cfg = cfg
        self.clock = clock
        self.helper_id = helper_id(cfg.data_dir)
        self.boot_id = uuid.uuid4().hex  # new for every process
        self.name = cfg.name or socket.gethostname()
        # the seeker's answer to a registration with the join token is this
        # helper's credential: it goes with every later request to the seeker,
        # and the seeker presents it with every request it makes here
        self.join_token = cfg.join_token or cfg.token
        self.seeker = SeekerClient(cfg.seeker_url, self.join_token, ca_cert=cfg.ca_cert)
        # the long poll has a connection of its own: when it drops, the
        # seeker knows this helper died (pull mode)
        self.poller = SeekerClient(cfg.seeker_url, None, ca_cert=cfg.ca_cert)
        self._register_lock = threading.Lock()
        self._asked_heartbeat = 15.0  # what the seeker asks for (its answers say)
        self._asked_wait = 25.0  # how long the seeker lets a poll wait (likewise)
        self._polled_at: datetime | None = None  # when a poll was last answered
        self._sent_shape: dict | None = None  # of the last registration the seeker took
        self._sent_at: datetime | None = None
        # push mode: when the seeker last took a report of a run from this
        # helper, and last answered a beat or registration (seconds, on
        # `clock`); a beat its reports made needless waits `_quiet` seconds
        self._heard_at: float | None = None
        self._beat_at: float | None = None
        self._quiet: float | None = None
        self._credentials: tuple[str, ...] = ()  # the newest first
        self._rotated_at: datetime | None = None  # when the newest credential came
        self._credential_file = CredentialFile(cfg.data_dir)
        kept = self._credential_file.load()
        if kept:  # a restart: register with it (the seeker then issues a new one)
            self._credentials = (kept,)
            self._authorize(kept)
        # results and artifacts go with each attempt's receipt, not a token
        self.channel = ChannelClient(cfg.channel_url, None, ca_cert=cfg.ca_cert)
        self.runtime = runtime or DockerRuntime(
            log_cap=cfg.log_cap, pull_timeout=cfg.pull_timeout, clock=clock
        )
        self.metrics = HelperMetrics()
        self.outbox = Outbox(
            Path(cfg.data_dir) / "outbox",
            self.metrics.counted(
                {
                    "artifact": self._upload_artifact,
                    "result": self._post_result,
                    "event": lambda p: self._report(p["task_id"], p["event"]),
                }
            ),
            # a channel outage must not keep completions from the seeker, nor
            # the reverse; within a lane the order holds (artifacts, then result)
            lanes={"artifact": "channel", "result": "channel", "event": "seeker"},
        )
        self.executor = Executor(
            self.runtime,
            self.outbox,
            self.helper_id,
            self.name,
            cfg.slots,
            prefetch=cfg.prefetch,
            report=self._report,
            network_mode=cfg.network_mode,
            boot_id=self.boot_id,
            declared_gpus="gpus" in cfg.declared,
            allow_images=cfg.allow_images,
            allow_mounts=cfg.allow_mounts,
            spill_root=Path(cfg.data_dir) / "spill",
            metrics=self.metrics,
            clock=clock,
            inputs=InputCache(Path(cfg.data_dir) / "inputs", self.channel, cfg.input_cache),
        )
        self.executor.running_report_delay = RUNNING_REPORT_DELAY
        app = create_app(
            executor=self.executor,
            token=cfg.token,
            seeker_credentials=self.seeker_credentials,
            describe=self.describe,
            metrics=self.metrics,
        )
        self.server = BackgroundServer(
            app, cfg.host, cfg.port, threads=max(8, cfg.slots + cfg.prefetch + 4), cert=cfg.tls
        )
        self.url = None if cfg.pull else cfg.advertise_url or self._default_url()
        self._stop = threading.Event()
        self._registered = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, name="register", daemon=True)
        self._poll_thread = threading.Thread(target=self._poll_loop, name="poll", daemon=True)

    def _authorize(self, credential: str) -> None:
        self.seeker.authorize(credential)
        self.poller.authorize(credential)

    def _default_url(self) -> str:
        if self.cfg.host not in ("0.0.0.0", "::", ""):
            return self.server.url
        url = f"{self.server.scheme}://{socket.getfqdn()}:{self.server.port}"
        log.warning(
            "listening on all interfaces without --advertise-url: telling the seeker "
            "to reach this helper at %s",
            url,
        )
        return url

    def _report(self, task_id: str, event: dict) -> dict:
        """Report a run's event to the seeker, which counts it as a contact
        with this helper, as it does a heartbeat (see `beat`; a pulling
        helper's polls stand for its beats instead)."""
        answer = self.seeker.report(task_id, event)
        if not self.cfg.pull:
            self._heard_at = self.clock().timestamp()
        return answer

    def _upload_artifact(self, entry: dict) -> None:
        if not Path(entry["path"]).exists():
            log.warning("artifact %s vanished before upload", entry["path"])
            return
        self.channel.upload_artifact(
            entry["task_id"],
            entry["helper_id"],
            entry["attempt"],
            entry["name"],
            entry["path"],
            receipt=entry.get("receipt"),
        )
        remove_spill(entry["path"])

    def _post_result(self, entry: dict) -> None:
        # an entry written before receipts is the bare result (the channel
        # will refuse it for want of a receipt, and the outbox sets it aside)
        result = entry["result"] if "receipt" in entry else entry
        self.channel.post_result(
            dict(result, sent_at=self.clock().isoformat()),
            receipt=entry.get("receipt"),
        )

    def resources(self) -> dict:
        report = {**host_resources(self.cfg.data_dir, keep_open=True), **self.cfg.declared}
        if "images" not in report:  # declared images stand in for Docker's
            report["images"] = self.runtime.image_references()
        return report

    def describe(self) -> dict:
        return {
            "helper_id": self.helper_id,
            "name": self.name,
            "url": self.url,
            "boot_id": self.boot_id,
            "outbox": self.outbox.pending(),
            "input_cache": self.executor.inputs.stats(),
            "resources": self.resources(),
        }

    def registration(self) -> dict:
        return {
            "helper_id": self.helper_id,
            "name": self.name,
            "mode": "pull" if self.cfg.pull else "push",
            "url": self.url,
            "slots": self.cfg.slots,
            # sent only when set: a seeker older than prefetch takes the rest
            **({"prefetch": self.cfg.prefetch} if self.cfg.prefetch else {}),
            "labels": self.cfg.labels,
            "resources": self.resources(),
            "boot_id": self.boot_id,
            "running": self.executor.running_keys(),
            "policy": {"images": self.cfg.allow_images, "mounts": self.cfg.allow_mounts},
            "heartbeat": self.cfg.heartbeat,  # the seeker asks no longer apart than this
        }

    def seeker_credentials(self) -> tuple[str, ...]:
        """What the seeker may present: the newest credential, and the one
        before it for as long as the seeker still honours it."""
        rotated = self._rotated_at
        if rotated is not None and self.clock() - rotated < ROTATION_GRACE:
            return self._credentials
        return self._credentials[:1]

    def register(self) -> bool:
        """Register (with the join token the first time, and whenever the
        seeker no longer knows the credential) or refresh (with it)."""
        with self._register_lock:  # the heartbeat and the poll both may
            return self._register()

    def heartbeat_every(self) -> float:
        """Seconds between heartbeats: as often as the seeker asks (more
        seldom in a large fleet), or as --heartbeat says if that is more often."""
        asked = self._asked_heartbeat
        return min(self.cfg.heartbeat, asked) if self.cfg.heartbeat else asked

    def poll_wait_now(self) -> float:
        """Seconds a poll waits for work: as long as the seeker lets it (its
        answers say), or as --poll-wait says if that is shorter."""
        asked = self._asked_wait
        return min(self.cfg.poll_wait, asked) if self.cfg.poll_wait else asked

    def polling(self) -> bool:
        """Pull mode without --heartbeat: a poll was answered within the
        longest a poll takes (its wait, and the time to answer it): the
        polls tell the seeker this helper is alive and what it runs, as
        light heartbeats would."""
        if not self.cfg.pull or self.cfg.heartbeat or self._polled_at is None:
            return False  # with --heartbeat, it beats as often as that says
        return self.clock() - self._polled_at < timedelta(seconds=self.poll_wait_now() + POLL_SLACK)

    def beat(self) -> bool:
        """One heartbeat: a full registration when anything but what it runs
        and its passing load changed, and at least every REFRESH_BEATS beats;
        else a light heartbeat (the seeker writes the light ones of a
        second in one write), but none while a pulling helper's polls go
        through, nor while a pushed helper's reports do (then `_quiet`
        says how long the next beat may wait: helper/beats.py quiet_left)."""
        body = self.registration()
        with self._register_lock:
            unchanged = shape_of(body) == self._sent_shape
            refresh = timedelta(seconds=self.heartbeat_every() * REFRESH_BEATS)
            recent = self._sent_at is not None and self.clock() - self._sent_at < refresh
            if not (self._registered.is_set() and unchanged and recent):
                return self._register(body)
            if self.polling():
                return True  # its polls say what a light heartbeat would
            now = self.clock().timestamp()
            every = self.heartbeat_every()
            self._quiet = quiet_left(now, every, self._heard_at, self._beat_at)
            if self._quiet is not None:
                return True  # its reports told the seeker it is alive
            try:
                answer = self.seeker.heartbeat(
                    self.helper_id, {k: body[k] for k in ("boot_id", *LIGHT)}
                )
            except ApiError as exc:
                if exc.status in (401, 404, 409):  # purged, removed, or another process
                    return self._register(body)
                log.warning("heartbeat to %s failed: %s", self.seeker.base_url, exc)
                return False
            except Unreachable as exc:
                log.warning("heartbeat to %s failed: %s", self.seeker.base_url, exc)
                return False
        self._asked_heartbeat = answer.get("heartbeat") or self._asked_heartbeat
        self._beat_at = now
        self._stop_runs(answer.get("stop") or [])
        return True

    def _register(self, body: dict | None = None) -> bool:
        body = body or self.registration()
        try:
            answer = self.seeker.register_helper(body)
        except ApiError as exc:
            if exc.status == 401 and self._credentials:
                log.warning(
                    "the seeker no longer accepts this helper's credential (purged or "
                    "removed?): registering again with the join token"
                )
                self._credentials = ()
                self._credential_file.forget()
                self._authorize(self.join_token)
                return self._register(body)
            log.warning("registration with %s failed: %s", self.cfg.seeker_url, exc)
            return False
        except Unreachable as exc:
            log.warning("registration with %s failed: %s", self.cfg.seeker_url, exc)
            return False
        credential = (answer or {}).get("credential")
        if credential:
            # the one before stays good a moment, for pushes already on their way
            self._credentials = (credential, *self._credentials[:1])
            self._rotated_at = self.clock()
            self._credential_file.save(credential)
            self._authorize(credential)
        if not self._registered.is_set():
            where = "pulling its work" if self.cfg.pull else f"at {self.url}"
            log.info("registered as %s (%s), %s", self.name, self.helper_id, where)
        self._sent_shape, self._sent_at = shape_of(body), self.clock()
        self._beat_at, self._quiet = self._sent_at.timestamp(), None
        self._asked_heartbeat = (answer or {}).get("heartbeat") or self._asked_heartbeat
        self._registered.set()
        self._stop_runs((answer or {}).get("stop") or [])
        return True

    def _stop_runs(self, keys: list[str]) -> None:
        """Stop the runs the seeker says are no longer this helper's (the
        task ended or ran elsewhere while this helper was away)."""
        for key in keys:
            try:
                self.executor.cancel(key)
                log.info("stopping %s: the seeker says it is no longer ours to run", key)
            except NotFound:
                pass  # ended meanwhile

    def _heartbeat(self) -> None:
        delay, before = 0.5, None
        while not self._stop.is_set():
            ok = self.beat()
            every = self.heartbeat_every()
            if ok and self._quiet is not None:  # left out: due `every` after its last report
                delay = self._quiet
            else:
                delay = next_beat_in(before, every) if ok else min(delay * 2, every)
                before = every if ok else before
            self._stop.wait(delay)

    def wait_registered(self, timeout: float) -> bool:
        return self._registered.wait(timeout)

    def start(self) -> HelperAgent:
        self.runtime.ping()
        adopted = self.executor.adopt(self.runtime.ours(self.helper_id))
        if adopted:
            log.info(
                "took over %d container(s) of an earlier helper process: %s",
                len(adopted),
                ", ".join(adopted),
            )
        self.server.start()
        self.outbox.start()
        self._thread.start()
        if self.cfg.pull:
            self._poll_thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.poller.close()  # ends a poll waiting at the seeker
        self.server.stop()
        self.outbox.stop()
        self._thread.join(timeout=5)
