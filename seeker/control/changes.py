"""What the other seekers on the database did, heard at once, so that work
one of them made possible does not wait for a sweep: MongoDB change streams
where the server offers them (a replica set does, and so does the embedded
SecantusDB, a one-node replica set), a short poll otherwise.

- a task submitted, or a replica given back (`open` changed): place it
  (`kick`);
- an assignment ended (its helper's slot is free): place more, if a task
  waits for room (`room`);
- an offer made to a pulling helper: answer its waiting poll here (`wake`);
- a task ended (cancelled, decided): wake the polls of the pulling helpers
  that run it, whose answer then says to stop it (`stop`);
- a helper removed, or its credential changed: forget what this process
  cached of it (`forget`);
- an event published: answer the requests waiting here for the next one
  (`new_event`);
- a task ended: answer the requests waiting here for its end (`ended`);
- a task or an assignment ended: the next heartbeat of a helper that
  reports running it is checked (`run_ended`: seeker/control/beat_checks.py).

Nothing here decides anything: each reaction reads the database afresh, so
an event heard twice, late, or not at all costs time, never correctness.
The echo of a submit, an offer, an assignment's end or an event made here,
whose writer started what it calls for itself, starts nothing; nor does
the echo of a task's end written here by its one replica's success look
for pulling helpers to stop (seeker/control/echoes.py)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from pymongo.database import Database
from pymongo.errors import OperationFailure, PyMongoError

from seeker.control.echoes import Echoes
from seeker.helper_models import HelperMode
from seeker.models import AssignmentState, TaskState

log = logging.getLogger(__name__)

# how long the stream's request waits for a change at the server (each wait
# is a database operation: 0.5 a second for an idle seeker; SecantusDB also
# answers it at every write, wanted or not)
AWAIT_MS = 2000
# seconds between the stream's requests to the server, after one that
# brought nothing and after the last change of one that brought some:
# SecantusDB ends a wait at every write, and this gathers the changes of a
# busy database into one answer (3.7 requests a task at 17 tasks a second
# without it, 0.7 with the pause after empty answers only); what this
# process did itself it hears at once, in process, and another seeker's
# news is 0.2 s late at most
GATHER = 0.2
# seconds stop() waits for the feed's threads: not for a request of the
# stream's waiting at the server (a seeker took up to AWAIT_MS + GATHER to
# stop, 2.2 s)
STOP_WAIT = 0.2
ENDED = [AssignmentState.FINISHED.value, AssignmentState.LOST.value]
ENDED.append(AssignmentState.PUSH_FAILED.value)
CHANGED = "updateDescription.updatedFields"
# the changes each collection's stream brings (a heartbeat's last_seen, of
# thousands of helpers, is not one of them)
WANTED = {
    "tasks": {
        "$or": [
            {"operationType": "insert"},
            # still replicas to place (a placement that placed the last
            # one leaves nothing to do)
            {f"{CHANGED}.open": {"$gte": 1}},
            {f"{CHANGED}.state": {"$in": list(TaskState.final())}},
        ]
    },
    "assignments": {
        "$or": [
            {"operationType": "insert", "fullDocument.via": HelperMode.PULL.value},
            {f"{CHANGED}.state": {"$in": ENDED}},
        ]
    },
    "helpers": {"$or": [{"operationType": "delete"}, {f"{CHANGED}.auth": {"$exists": True}}]},
    "events": {"operationType": "insert"},  # one a task, at its end
}


# what the handlers below read of a change (and its `_id`, the resume token):
# the server sends no more, neither an inserted task's spec nor an event's
# payload, nor the fields of an update that the handlers do not look at
KEPT = [
    "operationType",
    "ns.coll",
    "documentKey._id",
    "fullDocument.via",
    "fullDocument.helper_id",
    f"{CHANGED}.open",
    f"{CHANGED}.state",
    f"{CHANGED}.auth",
]


def wanted_pipeline() -> list[dict]:
    """The stream's filter: the changes of WANTED, for the server to apply,
    each cut down to the fields of KEPT."""
    wanted = {"$or": [{"ns.coll": name, **want} for name, want in WANTED.items()]}
    return [{"$match": wanted}, {"$project": dict.fromkeys(KEPT, 1)}]


def buffered(stream) -> int | None:
    """How many changes the stream holds from its last answer from the
    server (None: this pymongo does not say; tests/unit/test_changes.py
    checks that the installed one does)."""
    data = getattr(getattr(stream, "_cursor", None), "_data", None)
    return None if data is None else len(data)


class ChangeFeed:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        kick: Callable[[], None] = lambda: None,
        wake: Callable[[str], object] = lambda helper_id: None,
        forget: Callable[[str], None] = lambda helper_id: None,
        parked: Callable[[], int] = lambda: 0,
        poll_every: float = 1.0,
        room: Callable[[], None] | None = None,
        new_event: Callable[[], object] = lambda: None,
        ended: Callable[[str | None], object] = lambda task_id: None,
        echoes: Echoes | None = None,
        stop: Callable[[str], object] | None = None,
        joined: Callable[[list[str]], None] | None = None,
        run_ended: Callable[[str | None], None] = lambda key: None,
    ):
        """`joined(task_ids)`: a task was submitted at another seeker
        (default: `kick`); `wake(helper_id)`: an offer for a pulling helper;
        `stop(helper_id)`: a task a pulling helper runs ended (default:
        `wake`); `parked()`: how many polls wait in this process (the
        fallback poll looks for their work only while some do);
        `ended(task_id)`: a task ended (None: any may have, heard without
        change streams); `run_ended(key)`: a task (its id) or an assignment
        (its id) ended, whoever ended it (None: anything may have, heard
        without change streams or across a gap in the stream); `echoes`: the
        writes made here whose follow-up was started here."""
        self.db = db
        self.clock = clock
        self.kick, self.wake, self.forget, self.parked = kick, wake, forget, parked
        self.stop_runs = stop or wake
        self.room = room or kick
        self.joined = joined or (lambda task_ids: kick())
        self.new_event = new_event
        self.ended = ended
        self.run_ended = run_ended
        self.echoes = Echoes() if echoes is None else echoes
        self.poll_every = poll_every
        self.streams: bool | None = None  # None until known
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- what a change means -------------------------------------------------

    def on_task(self, change: dict) -> None:
        kind = change["operationType"]
        fields = (change.get("updateDescription") or {}).get("updatedFields") or {}
        if kind == "insert" and self.echoes.mine("tasks", change["documentKey"]["_id"]):
            pass  # submitted here, which kicked placement
        elif kind == "insert":
            self.joined([change["documentKey"]["_id"]])
        elif fields.get("open", 0) >= 1:
            self.kick()
        if fields.get("state") in TaskState.final():
            task_id = change["documentKey"]["_id"]
            self.ended(task_id)
            self.run_ended(task_id)
            # only polls waiting here are to hear it; none runs a task whose
            # one replica's success ended it here
            mine = self.echoes.mine("tasks", task_id)
            if self.parked() and not mine:
                self._wake_pullers_of(task_id)

    def on_assignment(self, change: dict) -> None:
        doc = change.get("fullDocument") or {}
        kind = change["operationType"]
        fields = (change.get("updateDescription") or {}).get("updatedFields") or {}
        if kind == "insert" and doc.get("via") == HelperMode.PULL.value:
            if not self.echoes.mine("assignments", change["documentKey"]["_id"]):
                self.wake(doc["helper_id"])  # an offer made here woke its poll itself
        elif fields.get("state") in ENDED:
            self.run_ended(change["documentKey"]["_id"])
            if not self.echoes.mine("assignments", change["documentKey"]["_id"]):
                self.room()  # a slot is free (one freed here made room itself)

    def on_helper(self, change: dict) -> None:
        fields = (change.get("updateDescription") or {}).get("updatedFields") or {}
        if change["operationType"] == "delete" or "auth" in fields:
            self.forget(change["documentKey"]["_id"])

    def on_event(self, change: dict) -> None:
        if not self.echoes.mine("events", change["documentKey"]["_id"]):
            self.new_event()  # one published here woke its waits as it was

    def _wake_pullers_of(self, task_id: str) -> None:
        live = {"task_id": task_id, "state": {"$in": AssignmentState.live()}}
        for a in self.db["assignments"].find({**live, "via": HelperMode.PULL.value}):
            self.stop_runs(a["helper_id"])

    # --- listening -----------------------------------------------------------

    def start(self) -> ChangeFeed:
        self.streams = self._streams_available()
        if self.streams:
            self._spawn("changes", self._follow)
        else:
            log.info("no change streams on this server: polling for other seekers' work")
            self._spawn("changes-poll", self._poll)
        return self

    def stop(self) -> None:
        """Stop following. A request of the stream's waiting at the server
        (up to AWAIT_MS) is not waited for: its thread ends when it is
        answered, and follows up nothing it brings."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=STOP_WAIT)

    def _spawn(self, name: str, target, *args) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _streams_available(self) -> bool:
        try:
            with self.db.watch(max_await_time_ms=1):
                return True
        except (OperationFailure, NotImplementedError, TypeError, AttributeError):
            return False  # a standalone server, or mongomock
        except PyMongoError as exc:
            log.warning("cannot tell whether the server has change streams: %s", exc)
            return False

    def _follow(self) -> None:
        """One stream over the database for the three collections (three
        streams made three requests for every write SecantusDB wakes them
        at); the server sends only the changes that matter here."""
        handlers = {
            "tasks": self.on_task,
            "assignments": self.on_assignment,
            "helpers": self.on_helper,
            "events": self.on_event,
        }
        resume = None
        while not self._stop.is_set():
            try:
                with self.db.watch(
                    wanted_pipeline(), resume_after=resume, max_await_time_ms=AWAIT_MS
                ) as stream:
                    # what ended before the stream was open went unheard
                    self.run_ended(None)
                    while not self._stop.is_set():
                        change = stream.try_next()
                        if self._stop.is_set():
                            return  # stopped while the server was asked
                        if change is None:
                            self._stop.wait(GATHER)
                            continue
                        resume = stream.resume_token
                        name = change["ns"]["coll"]
                        try:
                            handlers[name](change)
                        except PyMongoError as exc:
                            log.warning("change of %s not followed up: %s", name, exc)
                        if buffered(stream) == 0:  # the next change is the server's to send
                            self._stop.wait(GATHER)
            except PyMongoError as exc:
                if self._stop.is_set():
                    return  # the client was closed under the request it waited on
                log.warning("change stream on %s: %s (reopening)", self.db.name, exc)
                self._stop.wait(1.0)

    def _poll(self) -> None:
        """Without change streams: every `poll_every` seconds, place what
        waits, wake the polls here whose helpers got offers or whose runs'
        tasks ended since the last look, and the requests waiting for the
        next event or for a task's end (each looks again, and waits on if
        there is nothing yet).
        (Credentials cached here expire on their own: seeker/store/helpers.py.)"""
        since = self.clock()
        while not self._stop.wait(self.poll_every):
            now = self.clock()
            self.kick()
            self.new_event()
            self.ended(None)
            self.run_ended(None)
            if self.parked():
                try:
                    self._wake_since(since - timedelta(seconds=1))
                except PyMongoError as exc:
                    log.warning("polling for other seekers' work: %s", exc)
            since = now

    def _wake_since(self, since: datetime) -> None:
        offered = {
            "state": AssignmentState.PUSHING.value,
            "via": HelperMode.PULL.value,
            "assigned_at": {"$gte": since},
        }
        for a in self.db["assignments"].find(offered, {"helper_id": 1}):
            self.wake(a["helper_id"])
        ended = {"state": {"$in": TaskState.final()}, "updated_at": {"$gte": since}}
        for t in self.db["tasks"].find(ended, {"_id": 1}):
            self._wake_pullers_of(t["_id"])
