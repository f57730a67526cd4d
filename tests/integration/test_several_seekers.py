"""Three seekers on one database act as one seeker, and no one of them is a
single point of failure. One SecantusDB server in a process of its own
(`secantusd-py`; or TEST_MONGO_URL), one channel, three seekers with the
same secrets, two helpers (one pushed, one pulling) given all three seeker
URLs. Tasks are submitted round-robin while two seekers are SIGKILLed one
after the other: every task ends succeeded with exactly one result, none is
left pending or dispatched, and the last seeker still marks a SIGKILLed
helper offline and runs its work elsewhere."""

from __future__ import annotations

import os
import secrets
import signal
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from helper.config import helper_id
from seeker.client import SeekerClient
from serving.http import ApiError, Unreachable
from tests.integration.conftest import IMAGE, db_url
from tests.integration.harness import (
    Database,
    Service,
    free_ports,
    remove_containers,
    stop_all,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """A database server in a process of its own (several seekers share it)."""
    if os.environ.get("TEST_MONGO_URL"):
        yield os.environ["TEST_MONGO_URL"]
        return
    db = Database(tmp_path_factory.mktemp("secantusd")).start()
    yield db.url
    db.stop()


class Group:
    """A channel, three seekers and two helpers over one database."""

    def __init__(self, base, mongo_url):
        self.base = base
        self.token = secrets.token_urlsafe(16)
        prefix = secrets.token_hex(4)
        env = {"SEEKER_TOKEN": self.token, "SEEKER_CREDENTIAL_KEY": secrets.token_hex(32)}
        channel_port, *ports = free_ports(4)
        self.channel_url = f"http://127.0.0.1:{channel_port}"
        self.seeker_urls = [f"http://127.0.0.1:{p}" for p in ports]
        self.channel = Service(
            "channel",
            ["channel", "start", "--port", str(channel_port), "--data-dir", str(base / "c")]
            + ["--mongo-url", db_url(mongo_url, prefix + "_channel"), "--log-level", "debug"],
            base,
            env,
        )
        self.seekers = [
            Service(
                f"seeker-{n}",
                ["seeker", "start", "--port", str(port), "--data-dir", str(base / f"s{n}")]
                + ["--mongo-url", db_url(mongo_url, prefix + "_seeker")]
                + ["--channel-url", self.channel_url, "--log-level", "debug"]
                + ["--liveness", "6", "--probe-interval", "1"],
                base,
                env,
            )
            for n, port in enumerate(ports)
        ]
        every = ",".join(self.seeker_urls)
        self.helpers = {
            name: Service(
                name,
                ["helper", "start", "--name", name, "--data-dir", str(base / name)]
                + ["--port", str(free_ports(1)[0]), "--seeker-url", every]
                + ["--channel-url", self.channel_url, "--heartbeat", "1", "--slots", "2"]
                + ["--log-level", "debug", *extra],
                base,
                env,
            )
            for name, extra in (
                ("pushed", ["--label", "mode=push"]),
                ("pulling", ["--pull", "--label", "mode=pull"]),
            )
        }

    def start(self) -> Group:
        self.channel.start().wait_healthy(self.channel_url)
        for s, url in zip(self.seekers, self.seeker_urls, strict=True):
            s.start().wait_healthy(url)
        for h in self.helpers.values():
            h.start()
        return self

    def stop(self) -> None:
        try:
            stop_all([*self.helpers.values(), *self.seekers, self.channel])
        finally:
            # what a helper killed during a run left (each keeps its id in its data dir)
            engine = docker.from_env()
            try:
                remove_containers(engine, [helper_id(self.base / name) for name in self.helpers])
            finally:
                engine.close()

    def client(self, n: int) -> SeekerClient:
        return SeekerClient(self.seeker_urls[n], self.token, timeout=10)

    def logs(self) -> str:
        every = [self.channel, *self.seekers, *self.helpers.values()]
        return "\n".join(f"===== {s.name}\n{s.log()}" for s in every)

    def wait_registered(self, client: SeekerClient) -> None:
        """Both helpers are in the registry `client` reads; if not within
        60 s, the failure says what each service logged (it timed out once
        in ten runs on 2026-12-03, with nothing else to go on)."""
        try:
            wait_until(lambda: len(client.helpers()) == 2, 60, "both helpers to register")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None


@pytest.fixture
def group(tmp_path, database, workload_image):
    g = Group(tmp_path, database)
    try:
        yield g.start()
    finally:
        g.stop()


def test_three_seekers_are_one_seeker_and_survive_two_of_them_dying(group):
    survivor = group.client(2)
    group.wait_registered(survivor)
    submitted, alive = [], [0, 1, 2]

    def submit(n: int) -> None:
        for _ in range(len(alive)):
            seeker = alive[n % len(alive)]
            try:
                task = group.client(seeker).submit(IMAGE, ["sh", "-c", f"sleep 1; echo {n}"])
            except (Unreachable, ApiError):
                n += 1  # that one is down: the next
                continue
            submitted.append((task["task_id"], n))
            return
        raise AssertionError(f"no seeker took task {n}")

    for n in range(6):
        submit(n)
    group.seekers[0].stop(signal.SIGKILL)
    alive.remove(0)
    for n in range(6, 12):
        submit(n)
    group.seekers[1].stop(signal.SIGKILL)
    alive.remove(1)
    for n in range(12, 18):
        submit(n)

    for task_id, n in submitted:
        try:
            done = survivor.wait(task_id, timeout=120)
        except TimeoutError as exc:  # what it waits for, and what each process said
            raise AssertionError(f"{exc}: {survivor.get(task_id)}\n{group.logs()}") from None
        assert done["state"] == "succeeded", (done, group.logs())
        results = survivor.results(task_id)
        assert [r["stdout"] for r in results] == [f"{n}\n"], results
    for state in ("pending", "dispatched", "running"):
        assert survivor.tasks(state=state) == []

    # the survivor, which now holds the lease, still notices a dead helper
    long = survivor.submit(IMAGE, ["sleep", "30"])["task_id"]
    wait_until(
        lambda: any(a["state"] == "running" for a in survivor.get(long)["assignments"]),
        60,
        "the long task to run",
    )
    first = survivor.get(long)["assignments"][-1]["helper_name"]
    group.helpers[first].stop(signal.SIGKILL)
    wait_until(
        lambda: any(
            a["state"] == "running" and a["helper_name"] != first
            for a in survivor.get(long)["assignments"]
        ),
        90,
        f"the work of {first} to run elsewhere",
    )
    (dead,) = [h for h in survivor.helpers() if h["name"] == first] or [None]
    assert dead is None or dead["online"] is False
    survivor.cancel(long)


def test_a_run_on_a_pulling_helper_stops_when_another_seeker_cancels_its_task(group, docker_engine):
    """The pulling helper polls the first seeker; the task is cancelled at
    the third. The first hears of the end over its change feed and answers
    the parked poll with the run to stop (its polls on a kept connection
    no longer check the runs each time: seeker/control/mailbox.py)."""
    there = group.client(2)
    group.wait_registered(there)
    command = ["sh", "-c", "trap 'exit 143' TERM; sleep 60 & wait"]  # stops at once
    task_id = there.submit(IMAGE, command, constraints={"mode": "pull"})["task_id"]
    wait_until(
        lambda: [a["state"] for a in there.get(task_id)["assignments"]] == ["running"],
        60,
        "the task to run on the pulling helper",
    )
    there.cancel(task_id)
    try:
        wait_until(
            lambda: there.get(task_id)["assignments"][0]["state"] == "finished", 30, "the stop"
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {there.get(task_id)}\n{group.logs()}") from None
    (a,) = there.get(task_id)["assignments"]
    assert (a["helper_name"], a["status"]) == ("pulling", "cancelled")
    left = docker_engine.containers.list(all=True, filters={"name": f"seeker-{task_id}-"})
    assert left == []


def test_a_wait_at_any_seeker_is_answered_by_an_end_at_another(group):
    """Blocking queries at each of the three seekers, of the event log and
    of the task: the task's end, written and published by whichever seeker
    hears it, answers all six (the others hear it through their change
    streams), long before their wait is up."""
    clients = [group.client(n) for n in range(3)]
    group.wait_registered(clients[0])
    with ThreadPoolExecutor(6) as pool:
        waits = [
            pool.submit(SeekerClient(url, group.token, timeout=10).events, 0, 100, 120)
            for url in group.seeker_urls
        ]
        task_id = clients[1].submit(IMAGE, ["sh", "-c", "sleep 2; echo done"])["task_id"]
        ends = [
            pool.submit(SeekerClient(url, group.token, timeout=10).get, task_id, 120)
            for url in group.seeker_urls
        ]
        assert not any(w.done() for w in waits + ends)  # nothing has ended yet: they wait
        pages = [w.result(timeout=90) for w in waits]
        tasks = [e.result(timeout=30) for e in ends]
    for page in pages:
        assert [(e["type"], e["task_id"]) for e in page["events"]] == [
            ("task.succeeded", task_id)
        ], group.logs()
    assert [t["state"] for t in tasks] == ["succeeded"] * 3, group.logs()
