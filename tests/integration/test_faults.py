"""Faults, with real processes: the database restarted under load. The
seeker killed with SIGKILL mid-dispatch and restarted, and what a seeker
killed between a failed attempt's write and its give-back leaves behind,
are in test_seeker_killed.py.

The other faults of issue #6 are tested where their subject is:
the channel stopped while tasks finish in test_helper_safety.py
(test_results_wait_in_the_outbox_while_the_channel_is_down), a helper
killed with SIGKILL in test_scheduling.py
(test_a_helper_killed_mid_task_has_the_task_finished_elsewhere) and
test_replicas.py (test_a_replica_lost_with_its_helper_reruns_on_a_helper_that_had_not_run_it).
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from channel.client import ChannelClient
from serving.http import ApiError, Unreachable
from tests.integration.conftest import ECHO_ID, IMAGE
from tests.integration.harness import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=5).ok
    except requests.RequestException:
        return False


class Stream:
    """Submits `count` tasks from a thread, one every `gap` seconds; a
    submission the seeker cannot take yet is tried again."""

    def __init__(self, client, count: int, gap: float):
        self.client, self.count, self.gap = client, count, gap
        self.ids: list[str] = []
        self.thread = threading.Thread(target=self._run, name="submit", daemon=True)

    def _run(self) -> None:
        for _ in range(self.count):
            while True:
                try:
                    self.ids.append(self.client.submit(IMAGE, ECHO_ID)["task_id"])
                    break
                except (ApiError, Unreachable):  # the seeker's database is down
                    time.sleep(0.2)
            time.sleep(self.gap)

    def start(self) -> Stream:
        self.thread.start()
        return self


def test_services_recover_by_themselves_from_a_database_restart_under_load(
    fleet, cluster, database
):
    add, client = fleet
    add("db-a", "cpus=4,memory=4g", "--slots", "4")
    add("db-b", "cpus=4,memory=4g", "--slots", "4")
    services = [cluster.channel, cluster.seeker, *cluster.helpers.values()]
    pids = {s.name: s.proc.pid for s in services}

    stream = Stream(client, 20, 0.2).start()
    wait_until(lambda: len(stream.ids) >= 6, 30, "the first tasks to be submitted")
    database.stop()  # with tasks running, results and completions on their way
    # the outage outlasts pymongo's 10 s server selection, so that requests,
    # dispatch passes and periodic jobs fail rather than only wait
    time.sleep(11)
    database.start()
    stream.thread.join(60)
    assert not stream.thread.is_alive() and len(stream.ids) == 20

    channel = ChannelClient(cluster.channel_url, cluster.token)
    for task_id in stream.ids:
        task = client.wait(task_id, timeout=60, poll=0.2)
        assert task["state"] == "succeeded", task
    for task_id in stream.ids:
        results = wait_until(
            lambda t=task_id: channel.all_results(t), 30, f"the result of {task_id}"
        )
        assert [r["stdout"] for r in results] == [f"{task_id}\n"], results
    # the same processes, none restarted or dead: they recovered by themselves
    assert {s.name: s.proc.pid for s in services} == pids
    assert all(s.proc.poll() is None for s in services)
    urls = [cluster.channel_url, cluster.seeker_url, *cluster.helper_urls.values()]
    assert all(healthy(u) for u in urls)
