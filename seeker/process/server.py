"""A seeker process: stores, dispatcher, periodic jobs and the API, wired together."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from pymongo.database import Database

from channel.client import ChannelClient
from helper.client import HelperClient
from seeker.api.app import create_app
from seeker.api.metrics import SeekerMetrics
from seeker.control.credentials import HelperCredentials
from seeker.control.dispatcher import Dispatcher, DispatchLoop, assignment_payload
from seeker.control.health import HelperHealth
from seeker.control.inputs import with_grants
from seeker.control.mailbox import Mailbox
from seeker.control.operations import Seeker
from seeker.control.prober import Prober
from seeker.control.webhooks import WebhookWatcher
from seeker.store.events import EventLog
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore
from seeker.store.workflows import WorkflowStore
from serving import receipts
from serving.parking import Parking, raise_open_files_limit
from serving.tls import ServerCert
from serving.wsgi import BackgroundServer

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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


class SeekerServer:
    """`tls`: serve HTTPS with this certificate; `ca_cert`: the CA that the
    https:// helpers' and channel's certificates are signed by."""

    def __init__(
        self,
        db: Database,
        token: str,
        channel_url: str,
        host: str = "127.0.0.1",
        port: int = 7070,
        clock: Callable[[], datetime] = utcnow,
        purge_after: int = 3,
        sweep_seconds: float = 5.0,
        probe_seconds: float = 10.0,
        liveness_seconds: float = 45.0,
        notify_urls: tuple[str, ...] = (),
        notify_secret: str | None = None,
        join_token: str | None = None,
        credential_key: bytes | None = None,
        receipt_key: bytes | None = None,
        tls: ServerCert | None = None,
        ca_cert: Path | None = None,
        poll_wait: float = 25.0,
        ack_timeout: float = 10.0,
        poll_grace: float = 5.0,
        push_connect_timeout: float = 3.0,
        push_read_timeout: float = 10.0,
        push_threads: int = 32,
    ):
        """`credential_key` signs helper credentials: keep it across restarts
        (`seeker start` keeps it in its data directory), or every helper has
        to register again. `receipt_key` is shared with the channel (default:
        derived from the token, as the channel does).

        Pulling helpers wait up to `poll_wait` s for work, take an offer
        within `ack_timeout` s, and lose their work `poll_grace` s after their
        poll connection drops; pushes, `push_threads` at a time, give a
        helper `push_connect_timeout` s to accept the connection and
        `push_read_timeout` s to answer."""
        self.tasks, self.helpers = TaskStore(db), HelperStore(db)
        self.credentials = HelperCredentials(
            credential_key or secrets.token_bytes(32), self.helpers, clock
        )
        receipt_key = receipt_key or receipts.receipt_key(None, token)
        self.events = EventLog(db, clock)
        self.events.ensure_indexes()
        self.webhooks = [
            WebhookWatcher(self.events, url, db, secret=notify_secret) for url in notify_urls
        ]
        self.tasks.ensure_indexes()
        WorkflowStore.in_db(db).ensure_indexes()  # dependencies and arrays
        self.helpers.ensure_indexes()
        clients = HelperClients(
            self.credentials.for_helper,
            timeout=(push_connect_timeout, push_read_timeout),
            ca_cert=ca_cert,
        )

        def payload(task: dict, helper: dict, attempt: int, reservation: dict) -> dict:
            """What a helper is sent of an assignment, pushed or pulled: with
            its receipt, and a grant for each of its inputs."""
            body = assignment_payload(task, helper, attempt, reservation)
            receipt = receipts.sign(receipt_key, task["_id"], helper["helper_id"], attempt)
            return with_grants({**body, "receipt": receipt}, receipt_key)

        def push(helper: dict, assignment: dict) -> dict:  # assignment: a payload()
            return clients(helper).assign(assignment)

        self.pushes = ThreadPoolExecutor(push_threads, thread_name_prefix="push")
        self.parking = Parking(on_drop=lambda helper_id: self.seeker.poll_dropped(helper_id))
        self.loop = DispatchLoop(None)
        liveness = timedelta(seconds=liveness_seconds)
        self.metrics = SeekerMetrics()
        self.health = HelperHealth(
            self.helpers,
            self.tasks,
            clock,
            purge_after,
            liveness,
            kick=self.loop.kick,
            events=self.events,
            metrics=self.metrics,
        )
        self.mailbox = Mailbox(
            self.tasks,
            self.health,
            clock,
            payload,
            wake=self.parking.wake,
            ack_timeout=timedelta(seconds=ack_timeout),
        )
        self.dispatcher = Dispatcher(
            self.tasks,
            self.helpers,
            push=push,
            stop=lambda h, task_id, attempt: clients(h).cancel(task_id, attempt),
            clock=clock,
            health=self.health,
            liveness=liveness,
            metrics=self.metrics,
            pushes=self.pushes,
            mailbox=self.mailbox,
            payload=payload,
        )
        self.loop.dispatcher = self.dispatcher
        self.prober = Prober(
            self.helpers, self.health, lambda h: clients(h).status(), clock, kick=self.loop.kick
        )
        self.seeker = Seeker(
            self.tasks,
            self.helpers,
            clock,
            kick=self.loop.kick,
            channel=ChannelClient(channel_url, token, ca_cert=ca_cert),
            helper_client=clients,
            health=self.health,
            events=self.events,
            credentials=self.credentials,
            mailbox=self.mailbox,
            pushes=self.pushes,
            poll_wait=poll_wait,
            parked=self.parking.parked,
            poll_grace=timedelta(seconds=poll_grace),
            later=self._later,
        )
        self.app = create_app(
            seeker=self.seeker, token=token, join_token=join_token, metrics=self.metrics
        )
        self.scheduler = BackgroundScheduler(timezone=timezone.utc)
        periodic = {"coalesce": True, "max_instances": 1}
        self.scheduler.add_job(
            self.loop.kick, "interval", seconds=sweep_seconds, id="dispatch-sweep", **periodic
        )
        self.scheduler.add_job(
            self.prober.probe_all, "interval", seconds=probe_seconds, id="probe-helpers", **periodic
        )
        self.scheduler.add_job(
            self.dispatcher.resume_stale_pushes,
            "interval",
            seconds=probe_seconds,
            id="resume-stale-pushes",
            **periodic,
        )
        self.scheduler.add_job(
            self.mailbox.expire,
            "interval",
            seconds=min(1.0, ack_timeout / 4),
            id="expire-offers",
            **periodic,
        )
        self.scheduler.add_job(
            self.seeker.workflows.open_released,  # releases a seeker stopped half-way
            "interval",
            seconds=probe_seconds,
            id="release-held-tasks",
            **periodic,
        )
        self.scheduler.add_job(
            self.health.reap_silent,
            "interval",
            seconds=probe_seconds,
            id="reap-lost-work",
            **periodic,
        )
        self.server = BackgroundServer(
            self.app, host, port, threads=16, cert=tls, parking=self.parking
        )
        self.url = self.server.url

    def _later(self, seconds: float, job: Callable[[], None]) -> None:
        """Run `job` once, `seconds` from now, on the scheduler."""
        when = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        self.scheduler.add_job(job, "date", run_date=when)

    def start(self) -> SeekerServer:
        raise_open_files_limit()  # each pulling helper holds a connection
        for webhook in self.webhooks:
            webhook.start()
        self.loop.start()
        self.scheduler.start()
        self.server.start()
        self.loop.kick()  # carry on with whatever a previous run left pending
        return self

    def stop(self) -> None:
        self.server.stop()
        self.scheduler.shutdown(wait=False)
        self.loop.stop()
        self.pushes.shutdown(wait=False, cancel_futures=True)
        for webhook in self.webhooks:
            webhook.stop()
