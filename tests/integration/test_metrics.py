"""GET /metrics on the three real services after one task ran through them
(real processes, real Docker, a real wire-protocol database)."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from seeker.client import SeekerClient
from tests.integration.harness import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def scrape(url: str, token: str) -> dict[tuple, float]:
    resp = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def scrape_until(url: str, token: str, ready, what: str) -> dict[tuple, float]:
    """Scrape until `ready(samples)`: what the outbox delivers may trail the
    task's end (results and events travel in lanes of their own)."""

    def attempt():
        samples = scrape(url, token)
        return samples if ready(samples) else None

    return wait_until(attempt, 30, what)


def value(samples: dict, name: str, /, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture(scope="module")
def ran(stack, workload_image):
    """One task run to success; the stack with its id."""
    client = SeekerClient(stack.seeker_url, stack.token)
    wait_until(client.helpers, 30, "the helper to register")
    task = client.submit(workload_image, ["sh", "-c", "echo metered"])
    done = client.wait(task["task_id"], timeout=120)
    assert done["state"] == "succeeded", stack.logs()
    return stack


def test_metrics_need_the_token_on_every_service(ran):
    for url in (ran.seeker_url, ran.channel_url, ran.helper_url):
        assert requests.get(f"{url}/metrics", timeout=10).status_code == 401
        wrong = {"Authorization": "Bearer wrong"}
        assert requests.get(f"{url}/metrics", headers=wrong, timeout=10).status_code == 401


def test_the_seeker_counts_the_task_its_dispatch_and_its_helper(ran):
    samples = scrape(ran.seeker_url, ran.token)
    assert value(samples, "seeker_tasks_finished_total", state="succeeded") >= 1
    assert value(samples, "seeker_tasks", state="running") == 0
    assert value(samples, "seeker_tasks_queued") == 0
    assert value(samples, "seeker_dispatch_latency_seconds_count") >= 1
    assert 0 < value(samples, "seeker_dispatch_latency_seconds_sum") < 60
    assert value(samples, "seeker_pushes_total", outcome="accepted") >= 1
    assert value(samples, "seeker_helpers", state="online") == 1
    assert value(samples, "seeker_database_up") == 1


def test_the_channel_counts_the_result_it_stored(ran):
    samples = scrape_until(
        ran.channel_url,
        ran.token,
        lambda s: value(s, "seeker_channel_results_stored") >= 1,
        "the result to reach the channel",
    )
    posted = "seeker_channel_results_posted_total"
    assert value(samples, posted, status="succeeded", outcome="stored") == 1
    assert value(samples, "seeker_channel_database_up") == 1


def test_the_helper_counts_the_container_it_ran(ran):
    samples = scrape_until(
        ran.helper_url,
        ran.token,
        lambda s: (
            value(s, "seeker_helper_outbox_pending") == 0
            and value(s, "seeker_helper_containers_total", status="succeeded") >= 1
        ),
        "the run to be counted and the helper's outbox to empty",
    )
    assert value(samples, "seeker_helper_containers_total", status="succeeded") == 1
    assert value(samples, "seeker_helper_containers_total", status="failed") == 0
    assert value(samples, "seeker_helper_container_duration_seconds_count", status="succeeded") == 1
    assert value(samples, "seeker_helper_slots") == 2
    assert value(samples, "seeker_helper_containers_running") == 0
    delivered = "seeker_helper_outbox_deliveries_total"
    assert value(samples, delivered, kind="result", outcome="delivered") == 1
    assert value(samples, delivered, kind="event", outcome="delivered") == 1
