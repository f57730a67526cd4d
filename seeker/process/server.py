"""A seeker process: stores, dispatcher, periodic jobs and the API, wired together."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pymongo
from apscheduler.schedulers.background import BackgroundScheduler
from pymongo.database import Database
from pymongo.errors import PyMongoError

from channel.client import ChannelClient
from seeker.api.app import create_app
from seeker.api.metrics import SeekerMetrics
from seeker.control import acceptances
from seeker.control.changes import ChangeFeed
from seeker.control.credentials import HelperCredentials
from seeker.control.dispatch_loop import DispatchLoop
from seeker.control.dispatch_state import assignment_payload
from seeker.control.dispatcher import Dispatcher
from seeker.control.echoes import Echoes
from seeker.control.health import HelperHealth
from seeker.control.inputs import with_grants
from seeker.control.mailbox import Mailbox
from seeker.control.operations import Seeker
from seeker.control.prober import Prober
from seeker.control.webhooks import WebhookWatcher
from seeker.process.helper_clients import HelperClients
from seeker.process.waits import parked_kind, published, task_ended
from seeker.store.events import EVENT_WAITS, EventLog
from seeker.store.helpers import FOLLOWED_TTL, HelperStore
from seeker.store.leases import RETRY_PERIOD, Lease
from seeker.store.tasks import TaskStore
from seeker.store.workflows import WorkflowStore
from serving import receipts
from serving.parking import Parking, raise_open_files_limit
from serving.tls import ServerCert
from serving.wsgi import BackgroundServer

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def fingerprint_of(key: bytes) -> str:
    """A name for a key that does not reveal it."""
    return hmac.new(key, b"seeker key fingerprint", hashlib.sha256).hexdigest()[:16]


def require_shared_keys(lease: Lease, keys: dict[str, str]) -> None:
    """The seekers of one database are one seeker: a credential one issued
    or a receipt one signed must hold at the others. The lease holder keeps
    its keys' fingerprints in the lease; a seeker whose keys differ from a
    live holder's refuses to start, saying which (with no live holder, as
    after all seekers stopped to change a key, it starts)."""
    holder = lease.state()
    alive = holder.get("expires_at") and holder["expires_at"] > lease.clock()
    for name, fingerprint in keys.items():
        theirs = (holder.get("keys") or {}).get(name)
        if alive and theirs not in (None, fingerprint):
            raise ValueError(
                f"the running seeker {holder['holder']} on this database uses a different "
                f"{name}: give every seeker the same --{name.replace(' ', '-')}"
            )


# seconds a stopping seeker gives its last database writes, in all
STOP_WRITES = 5.0


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

        Pulling helpers wait up to `poll_wait` s for work (more in a fleet
        whose heartbeats are further apart: the polls are theirs), take an offer
        within `ack_timeout` s, and lose their work `poll_grace` s after their
        poll connection drops; pushes, `push_threads` at a time, give a
        helper `push_connect_timeout` s to accept the connection and
        `push_read_timeout` s to answer."""
        self.clock = clock
        # the placement passes read what changed of the registry since the last
        self.tasks, self.helpers = TaskStore(db).follow_live(), HelperStore(db, clock).follow()
        # the periodic work of a group of seekers on one database runs under it
        self.lease = Lease(db, clock, holder=f"{socket.gethostname()}-{os.getpid()}")
        self.credentials = HelperCredentials(
            credential_key or secrets.token_bytes(32), self.helpers, clock
        )
        receipt_key = receipt_key or receipts.receipt_key(None, token)
        keys = {"receipt key": fingerprint_of(receipt_key)}
        if credential_key is not None:  # a random one cannot be shared anyway
            keys["credential key"] = fingerprint_of(credential_key)
        require_shared_keys(self.lease, keys)
        self.lease.facts = {"keys": keys}
        # the submits, runs' ends and events made here: the change feed
        # brings them back, and what they call for was started here
        self.echoes = Echoes()
        self.events = EventLog(db, clock, echoes=self.echoes)
        self.events.ensure_indexes()
        self.webhooks = [
            WebhookWatcher(self.events, url, db, secret=notify_secret, may_send=self.lease.held)
            for url in notify_urls
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
        self.parking = Parking(on_drop=self._dropped, kind=parked_kind)
        # a request waiting for the next event is answered at each one
        # published here (another seeker's: through the change feed)
        self.events.watch(lambda event: published(self.parking, event))
        self.loop = DispatchLoop(None)
        liveness = timedelta(seconds=liveness_seconds)
        self.metrics = SeekerMetrics()
        self.events.watch(self.metrics.published)
        self.health = HelperHealth(
            self.helpers,
            self.tasks,
            clock,
            purge_after,
            liveness,
            kick=self.loop.kick,
            events=self.events,
            metrics=self.metrics,
            lease_epoch=lambda: self.lease.epoch,
            batch_contacts=True,  # written once a second by the flush-contacts job
        )
        self.mailbox = Mailbox(
            self.tasks,
            self.health,
            clock,
            payload,
            wake=self.parking.wake,
            ack_timeout=timedelta(seconds=ack_timeout),
            echoes=self.echoes,
        )
        # the helpers' answers to pushes, written by the record-acceptances job
        self.acceptances = acceptances.Acceptances(
            self.tasks,
            self.health,
            clock,
            stop=lambda h, task_id, attempt: clients(h).cancel(task_id, attempt),
            after=acceptances.AFTER,
        )
        self.dispatcher = Dispatcher(
            self.tasks,
            self.helpers,
            push=push,
            acceptances=self.acceptances,
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
            self.helpers, self.health, lambda h: clients(h).status(), clock, kick=self._room_made
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
            room=self._room_made,
            heard=self.acceptances.heard,
            echoes=self.echoes,
            joined=self.loop.joined,
        )
        self.app = create_app(
            seeker=self.seeker, token=token, join_token=join_token, metrics=self.metrics
        )
        self.scheduler = BackgroundScheduler(timezone=timezone.utc)
        self._schedule(sweep_seconds, probe_seconds, ack_timeout)
        self.changes = ChangeFeed(
            db,
            clock,
            kick=self.loop.kick,
            wake=self.mailbox.offer,
            stop=self.mailbox.stop,
            forget=self.helpers.forget,
            parked=self._polls_parked,
            room=self._room_made,
            new_event=lambda: self.parking.wake(EVENT_WAITS),
            ended=self._ended,
            echoes=self.echoes,
            joined=self.loop.joined,
            run_ended=self.health.beats.ended,
        )
        self.server = BackgroundServer(
            self.app, host, port, threads=16, cert=tls, parking=self.parking
        )
        self.url = self.server.url

    def _ended(self, task_id: str | None) -> None:
        """A task ended, heard through the change feed (None: any may have)."""
        task_ended(self.parking, task_id)

    def _dropped(self, key: str) -> None:
        """A parked request's client went away: a pulling helper's poll
        (usually, the helper died), or a wait for the next event or for a
        task's end."""
        if parked_kind(key) == "poll":
            self.seeker.poll_dropped(key)

    def _polls_parked(self) -> int:
        """The pulling helpers' polls parked here (not the waits for events
        or tasks' ends)."""
        return self.parking.parked(kind="poll")

    def _schedule(self, sweep: float, probe: float, ack_timeout: float) -> None:
        """The periodic work, done by the one seeker of the group that holds
        the lease (each job does nothing elsewhere), and the lease itself,
        tried by every seeker every 2 s."""
        jobs = {
            "dispatch-sweep": (self.loop.kick, sweep),
            "probe-helpers": (self.prober.probe_all, probe),
            "resume-stale-pushes": (self.dispatcher.resume_stale_pushes, probe),
            "expire-offers": (self.mailbox.expire, min(1.0, ack_timeout / 4)),
            "reap-lost-work": (self.health.reap_silent, probe),
            "reconcile-placements": (self._reconcile, 10.0),
            # releases of held tasks a seeker stopped half-way
            "release-held-tasks": (self.seeker.workflows.open_released, probe),
            "prune-events": (self.events.prune, 3600.0),
            "deliver-webhooks": (self._wake_webhooks, 2.0),
        }
        periodic = {"coalesce": True, "max_instances": 1}
        for name, (job, seconds) in jobs.items():
            guarded = self.lease.run_if_held(job)
            self.scheduler.add_job(guarded, "interval", seconds=seconds, id=name, **periodic)
        # every seeker writes the answers to its pushes that no report overtook
        self.scheduler.add_job(
            self.acceptances.record_due,
            "interval",
            seconds=0.5,
            id="record-acceptances",
            **periodic,
        )
        # every seeker writes the contacts it heard, once a second, in one write
        self.scheduler.add_job(
            self.health.flush, "interval", seconds=1.0, id="flush-contacts", **periodic
        )
        self.scheduler.add_job(
            self.lease.try_acquire,
            "interval",
            seconds=RETRY_PERIOD.total_seconds(),
            id="lease",
            next_run_time=datetime.now(timezone.utc),
            **periodic,
        )

    def _room_made(self) -> None:
        """A replica ended, a helper joined or answered a probe: a pass is
        of use only if the last one left a task waiting for room (a task
        submitted or given back since kicked one anyway, here or, through
        the change streams, at another seeker; the sweep catches the rest).
        In a fleet of thousands of idle helpers this spares a query of the
        queue per registration."""
        if self.dispatcher.wants_room():
            self.loop.room()

    def _reconcile(self) -> int:
        """Finish what a seeker that stopped left half done: a placement
        counted by its task but never written, a replica not given back."""
        now = self.clock()
        # each pair of writes is milliseconds apart: one whose first write is
        # 15 s old is not on its way any more
        before = now - timedelta(seconds=15)
        placed = self.tasks.reconcile_placements(before=before, now=now)
        return placed + self.tasks.reconcile_give_backs(before=before, now=now)

    def _wake_webhooks(self) -> None:
        for webhook in self.webhooks:
            webhook.wake()

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
        self.changes.start()
        self.health.beats.listening = True  # the feed reports what ended (run_ended)
        if self.changes.streams:  # other seekers' changes to helpers are heard at once
            self.helpers.auth_ttl = FOLLOWED_TTL
        self.server.start()
        self.loop.kick()  # carry on with whatever a previous run left pending
        return self

    def stop(self) -> None:
        self.server.stop()
        self.scheduler.shutdown(wait=False)
        self.changes.stop()
        # what it holds in memory is written (the pushes' answers, the good
        # contacts), and the lease given up so that another seeker takes
        # over at once; all within STOP_WRITES seconds, so that a seeker
        # told to stop while its database is away stops (then the stale-push
        # sweep resends those pushes, the helpers' next contacts count, and
        # the lease expires by itself)
        with pymongo.timeout(STOP_WRITES):
            last = {
                "the pushes' answers": self.acceptances.close,
                "the good contacts": self.health.flush,
                "the lease's release": self.lease.release,
            }
            for what, write in last.items():
                try:
                    write()
                except PyMongoError as exc:
                    log.warning("stopping: %s not written: %s", what, exc)
        self.loop.stop()
        self.pushes.shutdown(wait=False, cancel_futures=True)
        for webhook in self.webhooks:
            webhook.stop()
