"""The three services, each a Flask app in this process, for schemathesis to
fuzz through its own OpenAPI document: stores on mongomock, the seeker's
channel the channel app (over a requests adapter, no socket), the helper's
containers a fake runtime. Nothing listens on a port; no container runs.

Each service starts with a little data (a helper, tasks, a running
assignment, results, an artifact) and names the ids that exist, so that the
fuzzing also reaches the answers of existing things and not only 404s.

Each request carries the secret its operation takes (Service.headers): the
user token, the seeker's credential at the helper, a helper's credential for
its events, the receipt of the attempt a result or an artifact names. A
request whose secret cannot match (an event naming another helper, a result
for an attempt given as a string) is answered 401 or 403, which every
operation documents."""

from __future__ import annotations

import functools
import io
import itertools
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Flask
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HELPER_ID = "fuzzhelper0123456789"
# what the helper's seeker presents (the helper knows it from its registration)
SEEKER_CREDENTIAL = f"hc1.{HELPER_ID}.fuzznonce.fuzzmac"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
DIGEST = "sha256:" + "a" * 64


@dataclass
class Service:
    """An app under fuzzing, and the ids of what exists in it, by the name
    of the parameter that takes them."""

    app: Flask
    known: dict[str, Callable[[], list]] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None
    # the Authorization header for (method, path, JSON body, query)
    secret: Callable[[str, str, Any, dict | None], str] = lambda *request: TOKEN

    def headers(self, method: str, path: str, body: Any = None, query: dict | None = None):
        return {"Authorization": f"Bearer {self.secret(method.upper(), path, body, query)}"}

    def headers_for(self, case) -> dict[str, str]:
        """The headers of a schemathesis case."""
        return self.headers(case.method, case.path, case.body, case.query)


class TickingClock:
    """A clock that moves 1 ms per reading: reproducible, and never still."""

    def __init__(self, start: datetime = T0):
        self._ticks = itertools.count()
        self._lock = threading.Lock()
        self.start = start

    def __call__(self) -> datetime:
        with self._lock:
            return self.start + timedelta(milliseconds=next(self._ticks))


@functools.cache
def _mongomock_gridfs() -> None:
    import mongomock.gridfs

    mongomock.gridfs.enable_gridfs_integration()


def mongomock_db():
    import mongomock

    _mongomock_gridfs()
    return mongomock.MongoClient(tz_aware=True)[f"fuzz_{uuid.uuid4().hex}"]


class WsgiPool:
    """A transport that hands each request to a WSGI app in this process,
    as serving/curl.py's CurlTransport sends it (see JsonClient.use_transport):
    the seeker's ChannelClient reads the channel app with it."""

    def __init__(self, app: Flask):
        self.client = app.test_client()

    def open(self, method, url, body=None, headers=None):
        """The app's answer (werkzeug's), read whole and closed."""
        parts = urlsplit(url)
        answer = self.client.open(
            parts.path, method=method, query_string=parts.query, headers=headers, data=body
        )
        answer.get_data()
        answer.close()
        return answer

    def send(self, method, url, body=None, headers=None, timeout=None):
        answer = self.open(method, url, body, headers)
        return answer.status_code, answer.status.partition(" ")[2], answer.get_data()

    def clear(self):
        pass


class WsgiAdapter(BaseAdapter):
    """The same pool as a requests transport, for the client's streamed
    requests (`raw`)."""

    def __init__(self, pool: WsgiPool):
        super().__init__()
        self.pool = pool

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        answer = self.pool.open(
            request.method, request.url, body=request.body, headers=dict(request.headers)
        )
        resp = requests.Response()
        resp.status_code = answer.status_code
        resp.reason = answer.status.partition(" ")[2]
        resp.headers = CaseInsensitiveDict(dict(answer.headers))
        resp.raw = io.BytesIO(answer.get_data())
        resp.url = request.url
        resp.request = request
        return resp

    def close(self):
        pass


def result_body(task_id: str, helper_id: str, attempt: int, **fields) -> dict:
    return {
        "task_id": task_id,
        "helper_id": helper_id,
        "helper_name": helper_id,
        "attempt": attempt,
        "image": "busybox:1.36",
        "status": "succeeded",
        "exit_code": 0,
        "stdout": "hi\n",
        "output_digest": DIGEST,
        "started_at": T0,
        "finished_at": T0 + timedelta(seconds=1),
        "sent_at": T0 + timedelta(seconds=2),
        **fields,
    }


def seed_channel(app: Flask, task_id: str, runs: list[tuple[str, int]]) -> dict[str, list]:
    """A result and an artifact for each (helper_id, attempt) of `task_id`."""
    from channel.models import ResultIn

    store, artifacts = app.extensions["results"], app.extensions["artifacts"]
    known: dict[str, list] = {"result_id": [], "artifact_id": []}
    for helper_id, attempt in runs:
        result = ResultIn.model_validate(result_body(task_id, helper_id, attempt))
        doc, _ = store.add(result.model_dump(mode="python"), received_at=T0)
        key = {"task_id": task_id, "helper_id": helper_id, "attempt": attempt, "name": "output.tar"}
        art, _ = artifacts.put(key, io.BytesIO(b"tar" * 100), uploaded_at=T0, max_bytes=2**20)
        known["result_id"].append(doc["result_id"])
        known["artifact_id"].append(art["artifact_id"])
    return known


def channel_app(max_artifact_bytes: int = 4096) -> Flask:
    from channel.app import create_app
    from channel.artifacts import ArtifactStore
    from channel.store import ResultStore

    db = mongomock_db()
    store = ResultStore(db)
    store.ensure_indexes()
    artifacts = ArtifactStore(db, chunk_size=1024)
    artifacts.ensure_indexes()
    return create_app(
        {"MAX_ARTIFACT_BYTES": max_artifact_bytes},
        store=store,
        token=TOKEN,
        clock=TickingClock(),
        artifacts=artifacts,
    )


def receipt_of(attempt: Any) -> str:
    """The receipt the seeker makes for the attempt a result's body or an
    artifact's query names (its task, helper and attempt); one that cannot
    match when they are not strings and an integer."""
    from serving import receipts

    if not isinstance(attempt, dict):
        return receipts.PREFIX + "0" * 64
    task_id, helper_id, number = (attempt.get(k) for k in ("task_id", "helper_id", "attempt"))
    if isinstance(number, str) and number.isascii() and number.isdigit():
        number = int(number)  # a query parameter
    if not (isinstance(task_id, str) and isinstance(helper_id, str)):
        return receipts.PREFIX + "0" * 64
    if not isinstance(number, int) or isinstance(number, bool):
        return receipts.PREFIX + "0" * 64
    return receipts.sign(receipts.receipt_key(None, TOKEN), task_id, helper_id, number)


def channel_secret(method: str, path: str, body: Any, query: dict | None) -> str:
    """A helper stores results and artifacts with its attempt's receipt; the
    rest reads with the token."""
    if (method, path) == ("POST", "/api/v1/results"):
        return receipt_of(body)
    if (method, path) == ("POST", "/api/v1/artifacts"):
        return receipt_of(query)
    return TOKEN


def channel_service() -> Service:
    app = channel_app()
    known = seed_channel(app, "known0000task0001", [("h1", 1), ("h2", 2)])
    return Service(
        app,
        {
            "task_id": lambda: ["known0000task0001"],
            "result_id": lambda: known["result_id"],
            "artifact_id": lambda: known["artifact_id"],
        },
        secret=channel_secret,
    )


class NoHelper:
    """What the seeker uses to stop a run on a helper: nothing to stop here."""

    def cancel(self, task_id: str, attempt: int) -> None:
        return None


def seeker_service() -> Service:
    from channel.client import ChannelClient
    from seeker.api.app import create_app
    from seeker.control.health import HelperHealth
    from seeker.control.operations import Seeker
    from seeker.helper_models import HelperRegistration
    from seeker.models import TaskSpec
    from seeker.store.events import EventLog
    from seeker.store.helpers import HelperStore
    from seeker.store.tasks import TaskStore
    from serving.errors import Conflict

    db, clock = mongomock_db(), TickingClock()
    tasks, helpers = TaskStore(db), HelperStore(db)
    tasks.ensure_indexes()
    helpers.ensure_indexes()
    events = EventLog(db, clock)
    events.ensure_indexes()
    channel_side = channel_app()
    channel = ChannelClient("http://channel.fuzz", TOKEN)
    in_process = WsgiPool(channel_side)
    channel.use_transport("http://channel.fuzz", in_process)
    channel.session.mount("http://channel.fuzz", WsgiAdapter(in_process))
    seeker = Seeker(
        tasks,
        helpers,
        clock,
        channel=channel,
        helper_client=lambda helper: NoHelper(),
        health=HelperHealth(helpers, tasks, clock, events=events),
        events=events,
    )
    h1 = HelperRegistration(helper_id="h1", name="gpu-1", url="http://10.0.0.1:7072", boot_id="b1")
    seeker.register(h1)

    def h1_credential() -> str:
        """h1's credential; when fuzzing removed h1 (and so revoked it), h1
        registers again, as a helper the seeker no longer knows does."""
        credential = seeker.credentials.for_helper("h1")
        if credential:
            return credential
        try:
            return seeker.register(h1)["credential"]
        except Conflict:  # a fuzzed helper took its name: h1 stays gone
            return "hc1.h1.revoked.revoked"

    def secret(method: str, path: str, body: Any, query: dict | None) -> str:
        """An event goes with the credential of the helper it names (its
        current one: fuzzing registers helpers again, which rotates it), else
        with h1's; the rest with the token (also the join token here)."""
        if method == "POST" and path.endswith("/events"):
            named = body.get("helper_id") if isinstance(body, dict) else None
            if isinstance(named, str) and named and named != "h1":
                credential = seeker.credentials.for_helper(named)
                if credential:
                    return credential
            return h1_credential()
        return TOKEN

    task_ids = [
        seeker.submit(TaskSpec(image="busybox:1.36", command=["echo", str(i)]))["task_id"]
        for i in range(3)
    ]
    # the first runs on h1, and its first attempt has a result in the channel
    running = task_ids[0]
    reservation = {"cpus": 0.0, "memory": 0, "gpus": 0, "gpu_indices": []}
    tasks.assign(tasks.get(running), helpers.get("h1"), clock(), reservation)
    tasks.assignment_accepted(running, "h1", 1, clock(), boot_id="b1")
    tasks.assignment_running(running, "h1", 1, clock())
    known = seed_channel(channel_side, running, [("h1", 1)])
    app = create_app(seeker=seeker, token=TOKEN)
    return Service(
        app,
        {
            "task_id": lambda: task_ids,
            "helper_id": lambda: ["h1"],
            "artifact_id": lambda: known["artifact_id"],
            "filename": lambda: ["dashboard.js", "dashboard.css"],
        },
        secret=secret,
    )


class HoldingRuntime:
    """A container runtime whose containers run until the fuzzing ends (a
    stop is noted, not obeyed): which assignments run, and so every answer,
    does not depend on how threads happen to be scheduled."""

    def __init__(self):
        self.done = threading.Event()
        self.stopped: list[str] = []

    def run(self, spec, on_started, on_pulling=None, on_exited=None):
        from helper.runs import RunOutcome

        on_started()
        self.done.wait(60)
        return RunOutcome("cancelled", None, b"", b"", started_at=T0, finished_at=T0)

    def stop(self, name: str) -> bool:
        self.stopped.append(name)
        return True


class DiscardingOutbox:
    def put_all(self, entries):
        pass

    def pending(self) -> int:
        return 0


def helper_service() -> Service:
    from helper.app import create_app
    from helper.executor import Executor

    runtime = HoldingRuntime()
    executor = Executor(
        runtime,
        DiscardingOutbox(),
        HELPER_ID,
        "fuzz-helper",
        slots=4,
        clock=TickingClock(),
        boot_id="fuzzboot",
        allow_mounts=["/data"],
    )

    def describe() -> dict:
        return {
            "helper_id": HELPER_ID,
            "name": "fuzz-helper",
            "url": "http://127.0.0.1:7072",
            "boot_id": "fuzzboot",
            "outbox": 0,
            "resources": {"cpus": 2.0, "memory_total": 2**31, "gpus": []},
        }

    def secret(method: str, path: str, body: Any, query: dict | None) -> str:
        """Assignments come from the seeker; status and metrics are read with the token."""
        if path.startswith("/api/v1/assignments"):
            return SEEKER_CREDENTIAL
        return TOKEN

    app = create_app(
        executor=executor,
        token=TOKEN,
        seeker_credentials=lambda: (SEEKER_CREDENTIAL,),
        describe=describe,
    )
    return Service(
        app,
        {"key": executor.running_keys, "helper_id": lambda: [HELPER_ID]},
        close=runtime.done.set,
        secret=secret,
    )
