"""GET /metrics on the three services, read back with prometheus_client's own
parser: the Flask test client over mongomock stores, a fake push, a fake
container runtime and a fake clock."""

from __future__ import annotations

from datetime import timedelta

import prometheus_client
import pytest
from dispatch_fakes import FakePush
from prometheus_client.parser import text_string_to_metric_families
from pymongo.errors import ServerSelectionTimeoutError
from test_executor import FakeOutbox

from helper.app import create_app as helper_app
from helper.executor import Executor
from helper.metrics import HelperMetrics
from helper.runs import RunOutcome
from seeker.api.app import create_app as seeker_app
from seeker.api.metrics import SeekerMetrics
from seeker.control.dispatcher import Dispatcher
from seeker.control.health import HelperHealth
from seeker.control.operations import Seeker
from seeker.models import TaskState
from seeker.store.events import EventLog
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore
from serving.http import ApiError, Unreachable
from tests.auth_support import bearer

AUTH = {"Authorization": "Bearer t"}
FINAL = {s.value for s in TaskState.final()}
LIVENESS = timedelta(seconds=45)
HELPER_ID = "abcdef0123456789"
GiB = 1024**3


def scrape(client) -> dict[tuple, float]:
    """Every sample a /metrics answer holds, by (name, sorted labels)."""
    resp = client.get("/metrics", headers=AUTH)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.content_type.startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.get_data(as_text=True))
        for s in family.samples
    }


def samples_of(collector) -> dict[tuple, float]:
    """What a collector (an EventMetrics object) holds, as `scrape` reads it."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in collector.collect()
        for s in family.samples
    }


def value(samples: dict, name: str, /, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def names(samples: dict) -> set[str]:
    return {name for name, _ in samples}


# --- the seeker ------------------------------------------------------------------


class SeekerEnv:
    """Stores, health, dispatcher and app sharing one SeekerMetrics, as
    seeker/process/server.py wires them."""

    def __init__(self, db, clock):
        self.clock = clock
        self.tasks, self.helpers = TaskStore(db), HelperStore(db)
        self.tasks.ensure_indexes()
        self.helpers.ensure_indexes()
        self.metrics = SeekerMetrics()
        self.push = FakePush()
        self.health = HelperHealth(
            self.helpers, self.tasks, clock, 3, LIVENESS, metrics=self.metrics
        )
        self.dispatcher = Dispatcher(
            self.tasks,
            self.helpers,
            push=self.push,
            clock=clock,
            health=self.health,
            liveness=LIVENESS,
            metrics=self.metrics,
        )
        events = EventLog(db, clock)
        events.ensure_indexes()
        events.watch(self.metrics.published)
        seeker = Seeker(self.tasks, self.helpers, clock, health=self.health, events=events)
        self.client = seeker_app(seeker=seeker, token="t", metrics=self.metrics).test_client()
        self.credentials: dict[str, str] = {}  # helper name -> the credential it was issued

    def submit(self, **spec) -> str:
        resp = self.client.post(
            "/api/v1/tasks", json={"image": "busybox:1.36", **spec}, headers=AUTH
        )
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()["task_id"]

    def register(self, name="gpu-1", slots=1):
        body = {
            "helper_id": f"id-{name}",
            "name": name,
            "url": f"http://{name}:7072",
            "slots": slots,
            "resources": {"cpus": 8, "memory_total": 16 * GiB, "memory_available": 16 * GiB},
        }
        resp = self.client.post("/api/v1/helpers", json=body, headers=AUTH)
        assert resp.status_code == 200, resp.get_json()
        self.credentials[name] = resp.get_json()["credential"]

    def finished(self, task_id: str, name="gpu-1", attempt=1):
        body = {
            "helper_id": f"id-{name}",
            "attempt": attempt,
            "state": "finished",
            "status": "succeeded",
            "exit_code": 0,
            "output_digest": "sha256:" + "b" * 64,
        }
        resp = self.client.post(
            f"/api/v1/tasks/{task_id}/events", json=body, headers=bearer(self.credentials[name])
        )
        assert resp.status_code == 200, resp.get_json()


@pytest.fixture
def seeker(mock_db, clock) -> SeekerEnv:
    return SeekerEnv(mock_db, clock)


def test_tasks_by_state_the_queue_and_live_assignments(seeker):
    first, _ = seeker.submit(), seeker.submit()
    seeker.register(slots=1)
    assert seeker.dispatcher.dispatch_pending() == 1
    samples = scrape(seeker.client)
    assert value(samples, "seeker_tasks", state="dispatched") == 1
    assert value(samples, "seeker_tasks", state="pending") == 1
    assert value(samples, "seeker_tasks", state="running") == 0  # every state, always
    assert value(samples, "seeker_tasks_queued") == 1
    assert value(samples, "seeker_assignments_live", state="accepted") == 1
    assert value(samples, "seeker_database_up") == 1
    assert value(samples, "seeker_tasks_finished_total", state="cancelled") == 0

    seeker.finished(first)
    samples = scrape(seeker.client)
    assert value(samples, "seeker_tasks", state="dispatched") == 0
    assert value(samples, "seeker_tasks_finished_total", state="succeeded") == 1
    assert value(samples, "seeker_assignments_live", state="accepted") == 0


def test_finished_tasks_are_counted_as_they_end_not_read_from_the_history(seeker):
    # the history is every task ever run: a count of it per scrape grows
    # without end (bench/findings.md 48)
    done, gone = seeker.submit(), seeker.submit()
    seeker.register(slots=2)
    seeker.dispatcher.dispatch_pending()
    seeker.finished(done)
    assert seeker.client.delete(f"/api/v1/tasks/{gone}", headers=AUTH).status_code == 200
    samples = scrape(seeker.client)
    ended = {s: value(samples, "seeker_tasks_finished_total", state=s) for s in FINAL}
    assert ended == {"succeeded": 1, "failed": 0, "cancelled": 1}
    states = {dict(labels)["state"] for name, labels in samples if name == "seeker_tasks"}
    assert states == {"pending", "dispatched", "running"}
    seeker.finished(done)  # the same end again is not a second end
    assert value(scrape(seeker.client), "seeker_tasks_finished_total", state="succeeded") == 1


def test_a_replicated_task_stays_queued_until_every_replica_is_placed(seeker):
    seeker.submit(replicas=2)
    seeker.register("gpu-1")
    seeker.dispatcher.dispatch_pending()
    samples = scrape(seeker.client)
    assert value(samples, "seeker_tasks", state="dispatched") == 1
    assert value(samples, "seeker_tasks_queued") == 1
    seeker.register("gpu-2")
    seeker.dispatcher.dispatch_pending()
    assert value(scrape(seeker.client), "seeker_tasks_queued") == 0


def test_dispatch_latency_runs_from_submit_to_the_accepted_push(seeker, clock):
    seeker.submit()
    clock.advance(3)
    seeker.register()
    seeker.dispatcher.dispatch_pending()
    samples = scrape(seeker.client)
    assert value(samples, "seeker_dispatch_latency_seconds_count") == 1
    assert value(samples, "seeker_dispatch_latency_seconds_sum") == 3.0
    assert value(samples, "seeker_dispatch_latency_seconds_bucket", le="2.5") == 0
    assert value(samples, "seeker_dispatch_latency_seconds_bucket", le="5.0") == 1
    assert value(samples, "seeker_pushes_total", outcome="accepted") == 1


def test_helpers_go_offline_past_the_liveness_window(seeker, clock):
    seeker.register("gpu-1")
    samples = scrape(seeker.client)
    assert value(samples, "seeker_helpers", state="online") == 1
    assert value(samples, "seeker_helpers", state="offline") == 0
    clock.advance(LIVENESS.total_seconds() + 1)
    seeker.register("gpu-2")
    samples = scrape(seeker.client)
    assert value(samples, "seeker_helpers", state="online") == 1
    assert value(samples, "seeker_helpers", state="offline") == 1


def test_helpers_online_as_their_own_deadline_says(seeker, clock):
    """A helper told to beat every 100 s (a large fleet) is online for two
    of its beats, not for --liveness alone; a pulling helper whose poll
    dropped is offline however lately it was heard from."""
    seeker.register("seldom")
    seeker.helpers.set_heartbeat("id-seldom", 100)
    seeker.register("puller")
    seeker.helpers.poll_gone("id-puller", clock())
    clock.advance(LIVENESS.total_seconds() + 1)
    seeker.register("fresh")
    samples = scrape(seeker.client)
    assert value(samples, "seeker_helpers", state="online") == 2
    assert value(samples, "seeker_helpers", state="offline") == 1


@pytest.mark.parametrize(
    "error, outcome",
    [
        (ApiError(429, "helper is full"), "busy"),
        (ApiError(403, "refused by this helper's policy"), "refused"),
        (ApiError(500, "internal error"), "rejected"),
        (Unreachable("connection refused"), "unreachable"),
    ],
)
def test_failed_pushes_are_counted_by_outcome(seeker, error, outcome):
    seeker.submit()
    seeker.register()
    seeker.push.fail("gpu-1", error)
    seeker.dispatcher.dispatch_pending()
    samples = scrape(seeker.client)
    assert value(samples, "seeker_pushes_total", outcome=outcome) == 1
    assert value(samples, "seeker_pushes_total", outcome="accepted") == 0
    assert value(samples, "seeker_dispatch_latency_seconds_count") == 0
    contact_failed = outcome in ("rejected", "unreachable")  # busy and refused answered
    assert value(samples, "seeker_failed_contacts_total") == int(contact_failed)


def test_three_failed_contacts_purge_the_helper_once(seeker, clock):
    seeker.submit()
    seeker.register()
    seeker.push.fail("gpu-1", Unreachable("timed out"))
    for _ in range(3):
        seeker.dispatcher.dispatch_pending()
        clock.advance(6)  # a helper where the task just failed is passed over for 5 s
    samples = scrape(seeker.client)
    assert value(samples, "seeker_pushes_total", outcome="unreachable") == 3
    assert value(samples, "seeker_failed_contacts_total") == 3
    assert value(samples, "seeker_helpers_purged_total") == 1
    assert value(samples, "seeker_helpers", state="online") == 0
    assert value(samples, "seeker_tasks", state="pending") == 1


class Unanswered:
    """A collection whose server cannot be reached."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ServerSelectionTimeoutError("no servers")

        return fail


def test_a_database_outage_shows_as_database_up_0_and_events_still_come(seeker, clock):
    seeker.register()
    seeker.tasks.tasks = Unanswered()
    # registering the collector asks the database nothing: an app starts without it
    seeker_app(seeker=Seeker(seeker.tasks, seeker.helpers, clock), token="t")
    samples = scrape(seeker.client)
    assert value(samples, "seeker_database_up") == 0
    assert "seeker_tasks" not in names(samples)
    assert value(samples, "seeker_pushes_total", outcome="accepted") == 0


# --- every service ---------------------------------------------------------------


class FakeRuntime:
    """Runs nothing: starts, then ends with `outcome` at once."""

    def __init__(self, outcome: RunOutcome):
        self.outcome = outcome

    def run(self, spec, on_started, on_pulling=None, on_exited=None):
        on_started()
        return self.outcome


def make_executor(outcome: RunOutcome, metrics: HelperMetrics | None = None):
    box = FakeOutbox()
    return Executor(FakeRuntime(outcome), box, HELPER_ID, "gpu-1", 2, metrics=metrics), box


@pytest.fixture
def helper():
    executor, _ = make_executor(RunOutcome("succeeded", 0))
    return helper_app(executor=executor, token="t").test_client()


@pytest.fixture(params=["seeker", "channel", "helper"])
def any_service(request):
    if request.param == "seeker":
        return request.getfixturevalue("seeker").client
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic t"}]
)
def test_metrics_need_the_token_and_healthz_stays_open(any_service, headers):
    resp = any_service.get("/metrics", headers=headers)
    assert resp.status_code == 401
    assert resp.get_json()["error"] in ("missing token", "invalid token")
    assert any_service.get("/healthz").status_code == 200
    assert scrape(any_service)  # and with the token, metrics


def test_each_app_serves_its_own_registry_not_the_process_wide_one(mock_db, clock):
    a, b = SeekerEnv(mock_db, clock), SeekerEnv(mock_db, clock)
    a.submit()
    a.register()
    a.dispatcher.dispatch_pending()
    assert value(scrape(a.client), "seeker_pushes_total", outcome="accepted") == 1
    assert value(scrape(b.client), "seeker_pushes_total", outcome="accepted") == 0
    default = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not {n for n in default if n.startswith("seeker")}


# --- the helper (more: test_helper_metrics.py) -----------------------------------


def test_a_helper_without_gpus_has_no_gpu_samples(helper):
    samples = scrape(helper)
    assert not {n for n in names(samples) if "_gpu_" in n}
    assert value(samples, "seeker_helper_slots") == 2
