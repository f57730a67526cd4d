"""What an idle fleet costs the seeker, kept small: heartbeats whose interval
grows with the fleet (Nomad's rule), light heartbeats written together once
a second, liveness that follows the interval, probes only for helpers that
fell silent, and polls of idle pulling helpers that read nothing. Fake
clock, mongomock, Flask's test client."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dispatch_fakes import Counting, FakePush, add_helper, add_task
from test_executor import FakeRuntime

from helper.agent import HelperAgent
from helper.beats import QUIET_BEATS, next_beat_in, quiet_left, shape_of
from helper.config import HelperConfig
from seeker.api.app import create_app
from seeker.control.dispatcher import Dispatcher
from seeker.control.health import HelperHealth
from seeker.control.mailbox import Mailbox
from seeker.control.operations import Seeker
from seeker.control.prober import silent
from seeker.placement.capacity import is_online, liveness_of
from seeker.store.helpers import HelperStore
from seeker.store.tasks import TaskStore
from serving.http import ApiError
from tests.auth_support import bearer

USER = bearer("t")


@pytest.fixture
def env(mock_db, clock):
    tasks, helpers = TaskStore(mock_db), HelperStore(mock_db, clock)
    health = HelperHealth(helpers, tasks, clock, batch_contacts=True)
    seeker = Seeker(tasks, helpers, clock, health=health, poll_wait=20)
    seeker.mailbox = Mailbox(tasks, health, clock, lambda t, h, a, r: {})
    client = create_app(seeker=seeker, token="t").test_client()
    return seeker, client


def join(client, helper_id: str, **fields) -> str:
    body = {"helper_id": helper_id, "name": helper_id, "url": "http://h:1", "boot_id": "b1"}
    resp = client.post("/api/v1/helpers", json={**body, **fields}, headers=USER)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["credential"]


def test_the_heartbeat_interval_grows_with_the_fleet(mock_db, clock):
    helpers = HelperStore(mock_db, clock)
    health = HelperHealth(helpers, TaskStore(mock_db), clock)
    assert health.heartbeat_interval() == 15.0
    for n in range(1000):
        helpers.helpers.insert_one({"_id": f"h{n}", "name": f"h{n}"})
    assert health.heartbeat_interval() == 15.0  # counted at most every 30 s
    clock.advance(31)
    assert health.heartbeat_interval() == 20.0  # 1,000 helpers at 50 a second
    for n in range(1000, 5000):
        helpers.helpers.insert_one({"_id": f"h{n}", "name": f"h{n}"})
    clock.advance(31)
    assert health.heartbeat_interval() == 100.0


def test_helpers_joining_together_are_counted_as_they_join(env, clock):
    """A fleet joining at once is asked for the interval it will need as it
    joins, not the one of the fleet counted up to 30 s before."""
    seeker, client = env
    for n in range(1000):
        seeker.helpers.helpers.insert_one({"_id": f"h{n}", "name": f"h{n}"})
    clock.advance(31)
    assert seeker.health.heartbeat_interval() == 20.0
    creds = [join(client, f"new{n}") for n in range(250)]
    assert seeker.health.heartbeat_interval() == 25.0  # no recount: 1,250 helpers
    body = {"helper_id": "new0", "name": "new0", "url": "http://h:1", "boot_id": "b1"}
    again = client.post("/api/v1/helpers", json=body, headers=bearer(creds[0]))
    assert again.status_code == 200  # registering again is no new helper
    assert seeker.health.heartbeat_interval() == 25.0


def test_liveness_follows_a_helpers_heartbeat_interval(clock):
    deadline = timedelta(seconds=45)
    assert liveness_of({"heartbeat": 15}, deadline) == deadline
    assert liveness_of({"heartbeat": 100}, deadline) == timedelta(seconds=200)
    doc = {"heartbeat": 100, "last_seen": clock()}
    clock.advance(150)
    assert is_online(doc, clock(), deadline)
    clock.advance(60)
    assert not is_online(doc, clock(), deadline)


def test_a_registration_says_how_often_to_beat_and_keeps_the_helpers_own(env):
    seeker, client = env
    resp = client.post(
        "/api/v1/helpers",
        json={"helper_id": "a", "name": "a", "url": "http://a:1", "heartbeat": 2},
        headers=USER,
    )
    assert resp.get_json()["heartbeat"] == 15.0  # what the seeker asks
    assert seeker.helpers.get("a")["heartbeat"] == 2  # what the helper does
    join(client, "b")
    assert seeker.helpers.get("b")["heartbeat"] == 15.0


def test_light_heartbeats_of_a_second_are_written_together(env, clock):
    seeker, client = env
    creds = {h: join(client, h) for h in ("a", "b", "c")}
    clock.advance(10)
    seeker.helpers.helpers = counting = Counting(seeker.helpers.helpers)
    for h, cred in creds.items():
        resp = client.post(
            f"/api/v1/helpers/{h}/heartbeat", json={"boot_id": "b1"}, headers=bearer(cred)
        )
        assert resp.status_code == 200
        assert resp.get_json() == {"heartbeat": 15.0, "stop": []}
    assert "update_one" not in counting.calls and "update_many" not in counting.calls
    assert seeker.health.flush() == 3
    assert counting.calls.count("update_many") == 1
    assert all(seeker.helpers.get(h)["last_seen"] == clock() for h in creds)


def test_a_helpers_first_heartbeat_reads_nothing_its_registration_wrote(env, clock):
    """The registration's own write tells the seeker what the helper's
    requests need (its credential, mode, process): not read back at the
    first heartbeat (5,000 helpers joining: 27 reads a second)."""
    seeker, client = env
    cred = join(client, "a")
    seeker.helpers.helpers = counting = Counting(seeker.helpers.helpers)
    resp = client.post("/api/v1/helpers/a/heartbeat", json={"boot_id": "b1"}, headers=bearer(cred))
    assert resp.status_code == 200
    assert counting.calls == []
    other = client.post("/api/v1/helpers/a/heartbeat", json={"boot_id": "b2"}, headers=bearer(cred))
    assert other.status_code == 409  # what it knows is right: another process is refused


def test_a_new_interval_is_written_with_the_contact_once(env, clock):
    """The fleet grew: the seeker asks for longer intervals, and records the
    one each helper now beats at (with its --heartbeat as a limit) in the
    batched contact write, once; the prober and liveness follow it."""
    seeker, client = env
    creds = {h: join(client, h) for h in ("a", "b", "c")}
    seeker.health.min_heartbeat = 40.0
    seeker.health._fleet = None  # counted again at once
    seeker.helpers.helpers = counting = Counting(seeker.helpers.helpers)
    limits = {"a": None, "b": 20.0, "c": None}
    for h, cred in creds.items():
        beat = {"boot_id": "b1", "heartbeat": limits[h]}
        resp = client.post(f"/api/v1/helpers/{h}/heartbeat", json=beat, headers=bearer(cred))
        assert resp.get_json()["heartbeat"] == 40.0
    seeker.health.flush()
    assert counting.calls.count("update_many") == 2  # one write for each interval
    assert [seeker.helpers.get(h)["heartbeat"] for h in creds] == [40.0, 20.0, 40.0]
    counting.calls.clear()
    clock.advance(40)
    for h, cred in creds.items():
        beat = {"boot_id": "b1", "heartbeat": limits[h]}
        client.post(f"/api/v1/helpers/{h}/heartbeat", json=beat, headers=bearer(cred))
    seeker.health.flush()
    assert counting.calls.count("update_many") == 1  # nothing new: the contacts alone
    assert not silent(seeker.helpers.get("a"), clock() + timedelta(seconds=44), 15.0)


def test_a_heartbeat_from_another_process_or_for_another_helper_is_refused(env):
    seeker, client = env
    cred = join(client, "a")
    join(client, "b")
    other = client.post("/api/v1/helpers/a/heartbeat", json={"boot_id": "b2"}, headers=bearer(cred))
    assert other.status_code == 409  # a restarted helper registers
    mine = client.post("/api/v1/helpers/b/heartbeat", json={"boot_id": "b1"}, headers=bearer(cred))
    assert mine.status_code == 403
    seeker.remove_helper("a")
    gone = client.post("/api/v1/helpers/a/heartbeat", json={"boot_id": "b1"}, headers=bearer(cred))
    assert gone.status_code == 401  # its credential went with it: it joins again


def test_a_failed_contact_is_not_undone_by_a_batched_good_one(env, clock):
    seeker, client = env
    join(client, "a")
    seeker.health.contact_ok("a")
    seeker.health.contact_failed("a", "a", "timed out")
    seeker.health.flush()
    assert seeker.helpers.get("a")["failures"] == 1


def test_an_idle_pulling_helpers_poll_reads_nothing(env, clock):
    seeker, client = env
    cred = join(client, "nat", mode="pull")
    del cred
    seeker.tasks.assignments = counting = Counting(seeker.tasks.assignments)
    helper = seeker.helpers.summary("nat")
    poll = {"boot_id": "b1", "running": [], "done": []}
    seeker.mailbox.collect(helper, **poll, fresh=True)  # a new connection looks once
    assert counting.calls == ["find"]
    for _ in range(5):
        clock.advance(25)
        seeker.mailbox.collect(helper, **poll, fresh=False)
    assert counting.calls == ["find"]
    seeker.mailbox.offer("nat")  # news: the next poll looks
    seeker.mailbox.collect(helper, **poll, fresh=False)
    assert counting.calls == ["find", "find"]
    clock.advance(3601)  # and at least every hour
    seeker.mailbox.collect(helper, **poll, fresh=False)
    assert counting.calls == ["find", "find", "find"]


def test_a_helper_joining_asks_for_a_placement_pass_only_if_a_task_waits_for_room(mock_db, clock):
    """A registration (a probe's answer, a run that ended) makes room: of use
    only if the last pass left a task waiting for it. 5,000 pushed helpers
    joining made a query of the queue each (bench: 23 queries a second)."""
    tasks, helpers = TaskStore(mock_db), HelperStore(mock_db, clock)
    kicks, rooms = [], []
    seeker = Seeker(
        tasks, helpers, clock, kick=lambda: kicks.append(1), room=lambda: rooms.append(1)
    )
    join(create_app(seeker=seeker, token="t").test_client(), "a")
    assert (kicks, rooms) == ([], [1])

    dispatcher = Dispatcher(tasks, helpers, push=FakePush(), clock=clock)
    assert dispatcher.wants_room()  # nothing is known yet: a pass may place something
    dispatcher.dispatch_pending()
    assert not dispatcher.wants_room()  # the queue was empty
    add_task(tasks, clock, "big", memory=64 * 2**30)  # fits nowhere: it waits
    dispatcher.dispatch_pending()
    assert dispatcher.wants_room()
    add_helper(helpers, clock, "huge", memory=128 * 2**30)
    assert dispatcher.dispatch_pending() == 1
    assert not dispatcher.wants_room()


class Seeker4Agent:
    """The seeker as a helper agent sees it, counting full and light beats."""

    def __init__(self):
        self.full, self.light = 0, 0
        self.beats: list[dict] = []
        self.refuse_light = None

    def register_helper(self, body):
        self.full += 1
        return {"heartbeat": 30.0, "stop": []}

    def report(self, task_id, event):
        return {"task_id": task_id, "state": event["state"]}

    def heartbeat(self, helper_id, beat):
        if self.refuse_light:
            status, self.refuse_light = self.refuse_light, None
            raise ApiError(status, "no such helper")
        self.light += 1
        self.beats.append(beat)
        return {"heartbeat": 30.0, "stop": []}

    base_url = "http://seeker"


@pytest.fixture
def agent(tmp_path, clock):
    cfg = HelperConfig("http://seeker", "http://channel", "t", tmp_path, name="h")
    a = HelperAgent(cfg, runtime=FakeRuntime(), clock=clock)
    a.seeker = Seeker4Agent()
    a.resources = lambda: {"cpus": 4, "memory_total": 8, "memory_available": 5, "gpus": []}
    return a


def test_the_agent_registers_once_then_beats_lightly_until_something_changes(agent, clock):
    assert agent.beat() and agent.seeker.full == 1
    assert agent.heartbeat_every() == 30.0  # as the seeker asked: still light beats after
    for _ in range(3):
        clock.advance(30)
        assert agent.beat()
    assert (agent.seeker.full, agent.seeker.light) == (1, 3)
    agent.resources = lambda: {"cpus": 4, "memory_total": 8, "memory_available": 2, "gpus": []}
    assert agent.beat() and agent.seeker.full == 1  # passing load: still light
    agent.cfg.labels["zone"] = "b"
    assert agent.beat() and agent.seeker.full == 2  # a label: registered again
    clock.advance(30 * 60 + 1)
    assert agent.beat() and agent.seeker.full == 3  # and every 60 beats (of 30 s) anyway
    agent.seeker.refuse_light = 404  # purged meanwhile
    assert agent.beat() and agent.seeker.full == 4


def test_a_helpers_own_heartbeat_is_kept_when_more_frequent(agent):
    agent.cfg.heartbeat = 5.0
    agent.beat()
    assert agent.heartbeat_every() == 5.0
    assert agent.registration()["heartbeat"] == 5.0  # its --heartbeat, sent as a limit
    agent.beat()
    assert agent.seeker.beats[-1]["heartbeat"] == 5.0


def test_the_shape_leaves_out_passing_load():
    a = {"name": "h", "running": ["x.1"], "resources": {"cpus": 4, "cpu_load": 0.3, "gpus": []}}
    b = {"name": "h", "running": [], "resources": {"cpus": 4, "cpu_load": 1.9, "gpus": []}}
    assert shape_of(a) == shape_of(b)
    gib = 1024**3
    g1 = {**a, "resources": {"gpus": [{"index": 0, "memory_free": 10 * gib + 5, "utilization": 1}]}}
    g2 = {
        **a,
        "resources": {"gpus": [{"index": 0, "memory_free": 10 * gib + 9, "utilization": 90}]},
    }
    g3 = {**a, "resources": {"gpus": [{"index": 0, "memory_free": 12 * gib, "utilization": 1}]}}
    assert shape_of(g1) == shape_of(g2) != shape_of(g3)


def test_a_helper_told_to_beat_less_often_spreads_its_next_beat():
    """A fleet that joined at once is told at once to beat every 100 s, not
    15: each helper's next beat falls at a random point between the two
    (never later than asked), then every 100 s."""
    draws = []

    def draw(low, high):
        draws.append((low, high))
        return low + 0.25 * (high - low)

    assert next_beat_in(None, 15.0, draw) == 15.0  # the first
    assert next_beat_in(15.0, 15.0, draw) == 15.0
    assert next_beat_in(15.0, 100.0, draw) == 36.25
    assert next_beat_in(100.0, 100.0, draw) == 100.0
    assert next_beat_in(100.0, 40.0, draw) == 40.0  # shorter: at once as asked
    assert draws == [(15.0, 100.0)]
    spread = [next_beat_in(15.0, 100.0) for _ in range(200)]
    assert all(15.0 <= s <= 100.0 for s in spread) and max(spread) - min(spread) > 40


def test_a_beat_may_wait_while_the_seeker_hears_from_the_helper_otherwise():
    """`every` after the last report, never QUIET_BEATS intervals after the
    last beat, and not at all without a report or for less than a second."""
    assert quiet_left(100.0, 15.0, None, 90.0) is None  # no report yet
    assert quiet_left(100.0, 15.0, 95.0, None) is None  # no beat answered yet
    assert quiet_left(100.0, 15.0, 95.0, 90.0) == 10.0  # 15 s after the report at 95
    assert quiet_left(100.0, 15.0, 85.5, 90.0) is None  # its report is 14.5 s old: beat
    last_beat = 100.0 - QUIET_BEATS * 15.0
    assert quiet_left(100.0, 15.0, 99.0, last_beat) is None  # quiet long enough: beat
    assert quiet_left(100.0, 15.0, 99.0, last_beat + 5.0) == 5.0
    assert quiet_left(100.0, 15.0, 130.0, 90.0) == 15.0  # a clock set back: one interval


def test_a_pushed_helper_whose_reports_reach_the_seeker_leaves_out_its_beats(agent, clock):
    assert agent.beat() and agent.seeker.full == 1  # registered (every 30 s, it is told)
    clock.advance(10)
    agent._report("t1", {"state": "finished"})
    clock.advance(20)
    assert agent.beat() and agent.seeker.light == 0  # heard 20 s ago: no beat
    assert agent._quiet == 10.0  # the next is due 30 s after that report
    clock.advance(10)
    assert agent.beat() and agent.seeker.light == 1  # nothing since: it beats
    assert agent._quiet is None
    for _ in range(QUIET_BEATS - 1):  # reports keep coming: no beat for 4 intervals
        clock.advance(30)
        agent._report("t2", {"state": "finished"})
        assert agent.beat() and agent.seeker.light == 1
        assert agent._quiet == 30.0
    clock.advance(30)
    agent._report("t3", {"state": "finished"})
    assert agent.beat() and agent.seeker.light == 2  # 4 intervals since its last beat
    assert agent.seeker.beats[-1]["running"] == []  # and the beat says what it runs


def test_a_pulling_helpers_reports_do_not_stand_for_its_beats(agent, clock):
    agent.cfg.pull, agent.cfg.heartbeat = True, 5.0  # --heartbeat: it beats though it polls
    assert agent.beat() and agent.seeker.full == 1
    clock.advance(5)
    agent._report("t1", {"state": "finished"})
    assert agent.beat() and agent.seeker.light == 1


def test_a_busy_helpers_beats_read_nothing_until_one_of_its_runs_ends(env, clock):
    """A beat that lists runs is checked (which to stop: two queries) when
    it may find something: the first, and the first after an end heard by
    the change feed (seeker/control/beat_checks.py). 200 helpers running
    one run each made 27.6 queries a second standing still."""
    seeker, client = env
    seeker.health.beats.listening = True  # as a seeker process's change feed says
    cred = join(client, "a")
    for task_id in ("t1", "t2"):
        seeker.tasks.create(task_id, {"image": "busybox:1.36"}, clock())
        seeker.tasks.assign(seeker.tasks.get(task_id), {"helper_id": "a", "name": "a"}, clock())
    seeker.tasks.assignments = counting = Counting(seeker.tasks.assignments)

    def beat(*running: str) -> list[str]:
        clock.advance(15)
        body = {"boot_id": "b1", "running": list(running)}
        resp = client.post("/api/v1/helpers/a/heartbeat", json=body, headers=bearer(cred))
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["stop"]

    assert beat("t1.1", "t2.1") == [] and counting.calls == ["find"]
    assert beat("t1.1", "t2.1") == [] and beat("t1.1") == [] and counting.calls == ["find"]
    seeker.tasks.cancel("t1", clock())  # its stop pushed to the helper, and lost
    seeker.health.beats.ended("t1")  # heard by the change feed
    assert beat("t1.1", "t2.1") == ["t1.1"] and counting.calls.count("find") == 2
    assert beat("t1.1", "t2.1") == ["t1.1"]  # still there: told again
    assert beat("t2.1") == [] and counting.calls.count("find") == 3
