"""HelperHealth: counting failed contacts, purging, and sending the work of a
purged, restarted or silent helper back to pending, over mongomock stores
with a fake clock."""

from __future__ import annotations

from datetime import timedelta

from seeker.models import TaskState
from seeker.placement.outcome import Decision

SPEC = {"image": "busybox:1.36", "resources": {"cpus": 1, "memory": 0, "gpus": 0}}


def registration(helper_id="h1", name="gpu-1", boot_id="boot-1", running=()) -> dict:
    return {
        "helper_id": helper_id,
        "name": name,
        "url": f"http://{name}:7072",
        "slots": 8,
        "boot_id": boot_id,
        "running": list(running),
    }


def register(helpers, clock, helper_id="h1", name="gpu-1", boot_id="boot-1") -> dict:
    return helpers.register(registration(helper_id, name, boot_id), clock())


def place(tasks, clock, task_id, helper_id="h1", state="accepted", boot_id="boot-1") -> dict:
    """A task with one assignment on `helper_id`, moved to `state`."""
    tasks.create(task_id, SPEC, clock())
    a = tasks.assign(tasks.get(task_id), {"helper_id": helper_id, "name": helper_id}, clock())
    if state in ("accepted", "running"):
        tasks.assignment_accepted(task_id, helper_id, 1, clock(), boot_id)
    if state == "running":
        tasks.assignment_running(task_id, helper_id, 1, clock())
    if state == "finished":
        tasks.assignment_running(task_id, helper_id, 1, clock())
        tasks.assignment_finished(task_id, helper_id, 1, {"status": "succeeded"}, clock())
        tasks.apply(tasks.get(task_id), Decision(TaskState.SUCCEEDED, 1), clock())
    return a


def assignment(tasks, task_id) -> dict:
    (a,) = tasks.assignments_of(task_id)
    return a


# --- failed contacts and purging -------------------------------------------------


def test_contact_failed_purges_at_the_threshold(health, helpers, clock):
    register(helpers, clock)
    assert health.contact_failed("h1", "gpu-1", "refused") is False
    assert health.contact_failed("h1", "gpu-1", "refused") is False
    assert helpers.get("h1")["failures"] == 2
    assert health.contact_failed("h1", "gpu-1", "timed out") is True
    assert helpers.get("h1") is None


def test_contact_ok_is_written_once_per_interval_and_after_any_failure(health, helpers, clock):
    register(helpers, clock)
    writes = []
    original = helpers.contact_ok
    helpers.contact_ok = lambda helper_id, now: writes.append(now) or original(helper_id, now)
    health.contact_ok("h1")
    clock.advance(1)
    health.contact_ok("h1")  # within the interval: nothing to write
    assert writes == [clock() - timedelta(seconds=1)]
    health.contact_failed("h1", "gpu-1", "refused")
    health.contact_ok("h1")  # a failure was counted: the count must start over now
    assert len(writes) == 2 and helpers.get("h1")["failures"] == 0
    clock.advance(health.contact_every.total_seconds())
    health.contact_ok("h1")
    assert len(writes) == 3 and helpers.get("h1")["last_seen"] == clock()


def test_contact_failed_for_an_unknown_helper(health, helpers):
    assert health.contact_failed("ghost", "ghost", "refused") is False


def test_a_successful_contact_resets_the_count(health, helpers, clock):
    register(helpers, clock)
    health.contact_failed("h1", "gpu-1", "refused")
    health.contact_failed("h1", "gpu-1", "refused")
    health.contact_ok("h1")
    assert helpers.get("h1")["failures"] == 0
    assert health.contact_failed("h1", "gpu-1", "refused") is False
    assert health.contact_failed("h1", "gpu-1", "refused") is False
    assert helpers.get("h1")["failures"] == 2


def test_contact_ok_refreshes_last_seen(health, helpers, clock):
    register(helpers, clock)
    health.contact_ok("h1")
    clock.advance(30)
    health.contact_ok("h1")
    assert helpers.get("h1")["last_seen"] == clock()


def test_purge_marks_live_assignments_lost_and_requeues_their_tasks(
    health, helpers, tasks, clock, kicks
):
    register(helpers, clock)
    place(tasks, clock, "pushing", state="pushing")
    place(tasks, clock, "accepted", state="accepted")
    place(tasks, clock, "running", state="running")
    place(tasks, clock, "done", state="finished")
    place(tasks, clock, "elsewhere", helper_id="h2")
    for _ in range(3):
        clock.advance(10)
        health.contact_failed("h1", "gpu-1", "refused")
    reason = "helper gpu-1 purged after 3 failed contacts"
    for task_id in ("pushing", "accepted", "running"):
        a = assignment(tasks, task_id)
        assert (a["state"], a["error"], a["finished_at"]) == ("lost", reason, clock())
        task = tasks.get(task_id)
        assert task["state"] == "pending"
        assert task["wait_reason"] == f"attempt 1 lost: {reason}"
    assert assignment(tasks, "done")["state"] == "finished"
    assert tasks.get("done")["state"] == "succeeded"
    assert assignment(tasks, "elsewhere")["state"] == "accepted"
    assert tasks.get("elsewhere")["state"] == "dispatched"
    assert kicks == [1]  # once, for all of them


def test_a_lost_task_can_be_assigned_again(health, helpers, tasks, clock):
    register(helpers, clock)
    place(tasks, clock, "t1")
    for _ in range(3):
        health.contact_failed("h1", "gpu-1", "refused")
    again = tasks.assign(tasks.get("t1"), {"helper_id": "h2", "name": "gpu-2"}, clock())
    assert again["_id"] == "t1.2"


def test_purging_a_helper_without_work_kicks_nobody(health, helpers, clock, kicks):
    register(helpers, clock)
    for _ in range(3):
        health.contact_failed("h1", "gpu-1", "refused")
    assert helpers.get("h1") is None
    assert kicks == []


def test_lose_work_leaves_a_cancelled_task_cancelled(health, tasks, clock, kicks):
    place(tasks, clock, "t1", state="running")
    tasks.cancel("t1", clock())
    assert health.lose_work("h1", "gone") == 1
    assert assignment(tasks, "t1")["state"] == "lost"
    assert tasks.get("t1")["state"] == "cancelled"
    assert kicks == [1]  # its slot is free


# --- a helper that registers again ----------------------------------------------------


def test_first_registration_loses_nothing(health, tasks, clock):
    place(tasks, clock, "t1")
    assert health.registered(None, registration()) == 0
    assert assignment(tasks, "t1")["state"] == "accepted"


def test_a_heartbeat_from_the_same_process_loses_nothing(health, tasks, clock, kicks):
    place(tasks, clock, "t1")
    assert health.registered(registration(), registration(running=[])) == 0
    assert assignment(tasks, "t1")["state"] == "accepted"
    assert kicks == []


def test_a_restarted_helper_loses_started_work_it_no_longer_runs(health, tasks, clock, kicks):
    place(tasks, clock, "forgotten", state="accepted")
    place(tasks, clock, "forgotten-running", state="running")
    place(tasks, clock, "still-running", state="running")
    place(tasks, clock, "being-pushed", state="pushing")
    place(tasks, clock, "new-process", state="accepted", boot_id="boot-2")
    place(tasks, clock, "other-helper", helper_id="h2", state="running")
    new = registration(boot_id="boot-2", running=["still-running.1"])
    assert health.registered(registration(boot_id="boot-1"), new) == 2
    reason = "helper gpu-1 restarted without it"
    for task_id in ("forgotten", "forgotten-running"):
        a = assignment(tasks, task_id)
        assert (a["state"], a["error"]) == ("lost", reason)
        assert tasks.get(task_id)["state"] == "pending"
    assert assignment(tasks, "still-running")["state"] == "running"
    assert assignment(tasks, "being-pushed")["state"] == "pushing"
    assert assignment(tasks, "new-process")["state"] == "accepted"
    assert assignment(tasks, "other-helper")["state"] == "running"
    assert kicks == [1]


def test_a_restart_after_an_accept_without_boot_id_loses_it(health, tasks, clock):
    place(tasks, clock, "t1", state="accepted", boot_id=None)
    assert health.registered(registration(boot_id="boot-1"), registration(boot_id="boot-2")) == 1
    assert assignment(tasks, "t1")["state"] == "lost"


# --- silent and removed helpers ----------------------------------------------------------


def test_reap_silent_loses_the_work_of_helpers_silent_past_the_liveness(
    health, helpers, tasks, clock, kicks
):
    register(helpers, clock, "h1", "quiet")
    register(helpers, clock, "h2", "chatty")
    place(tasks, clock, "on-quiet", helper_id="h1", state="running")
    place(tasks, clock, "on-chatty", helper_id="h2", state="running")
    clock.advance(45)
    assert health.reap_silent() == 0  # exactly at the deadline: still alive
    clock.advance(1)
    health.contact_ok("h2")
    assert health.reap_silent() == 1
    a = assignment(tasks, "on-quiet")
    assert a["state"] == "lost" and a["error"].startswith("helper quiet silent since 2024-05-01")
    assert tasks.get("on-quiet")["state"] == "pending"
    assert assignment(tasks, "on-chatty")["state"] == "running"
    assert helpers.get("h1") is not None  # failed probes purge; reaping only requeues
    assert kicks == [1]
    assert health.reap_silent() == 0  # nothing left to lose


def test_reap_silent_loses_the_work_of_a_removed_helper(health, helpers, tasks, clock):
    register(helpers, clock)
    place(tasks, clock, "a", state="running")
    place(tasks, clock, "b", state="pushing")
    helpers.remove("h1")
    assert health.reap_silent() == 2
    for task_id in ("a", "b"):
        a = assignment(tasks, task_id)
        assert (a["state"], a["error"]) == ("lost", "helper no longer registered")
        assert tasks.get(task_id)["state"] == "pending"


def test_reap_silent_with_nothing_to_do(health, helpers, clock, kicks):
    register(helpers, clock)
    clock.advance(3600)
    assert health.reap_silent() == 0
    assert kicks == []
