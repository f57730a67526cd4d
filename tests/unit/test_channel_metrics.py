"""GET /metrics on the channel, read back with prometheus_client's own
parser: the Flask test client over a mongomock store and a fake clock."""

from __future__ import annotations

from test_metrics import Unanswered, names, samples_of, scrape, value

from channel.app import create_app as channel_app
from channel.metrics import STORED_EVERY, ChannelMetrics
from channel.models import output_digest
from tests.auth_support import receipt_headers

# --- the channel -----------------------------------------------------------------


def result(**fields) -> dict:
    return {
        "task_id": "t1",
        "helper_id": "h1",
        "attempt": 1,
        "image": "busybox:1.36",
        "status": "succeeded",
        "exit_code": 0,
        "stdout": "hi\n",
        "output_digest": output_digest(b"hi\n"),
        "started_at": "2024-05-01T11:59:00+00:00",
        "finished_at": "2024-05-01T11:59:30+00:00",
        "sent_at": "2024-05-01T11:59:31+00:00",
        **fields,
    }


def test_results_posted_stored_and_duplicates(channel):
    assert value(scrape(channel), "seeker_channel_results_stored") == 0
    for payload in (result(), result(), result(attempt=2, status="failed", exit_code=1)):
        headers = receipt_headers(payload, "t")
        assert channel.post("/api/v1/results", json=payload, headers=headers).status_code in (
            200,
            201,
        )
    samples = scrape(channel)
    assert value(samples, "seeker_channel_results_stored") == 2
    assert value(samples, "seeker_channel_artifacts_stored") == 0
    assert value(samples, "seeker_channel_database_up") == 1
    posted = "seeker_channel_results_posted_total"
    assert value(samples, posted, status="succeeded", outcome="stored") == 1
    assert value(samples, posted, status="succeeded", outcome="duplicate") == 1
    assert value(samples, posted, status="failed", outcome="stored") == 1
    assert value(samples, posted, status="timed_out", outcome="stored") == 0


def test_the_channel_app_takes_the_metrics_object_it_is_given(results, clock):
    metrics = ChannelMetrics()
    client = channel_app(store=results, token="t", clock=clock, metrics=metrics).test_client()
    resp = client.post("/api/v1/results", json=result(), headers=receipt_headers(result(), "t"))
    assert resp.status_code == 201
    posted = value(
        samples_of(metrics),
        "seeker_channel_results_posted_total",
        status="succeeded",
        outcome="stored",
    )
    assert posted == 1


def test_the_stored_counts_are_taken_every_few_minutes_not_at_each_scrape(results, channel, clock):
    # on SecantusDB an estimated count reads every document (findings.md 49)
    counted, count = [], results.results.estimated_document_count

    class Counting:
        def __getattr__(self, name):
            return getattr(collection, name)

        def estimated_document_count(self):
            counted.append(clock())
            return count()

    collection, results.results = results.results, Counting()
    assert value(scrape(channel), "seeker_channel_results_stored") == 0
    post = channel.post("/api/v1/results", json=result(), headers=receipt_headers(result(), "t"))
    assert post.status_code == 201
    # what this channel stored shows at once, without a count
    assert value(scrape(channel), "seeker_channel_results_stored") == 1
    collection.insert_one({**result(task_id="t2"), "result_id": "t2.1"})  # another channel's
    clock.advance(STORED_EVERY.total_seconds() - 1)
    samples = scrape(channel)
    assert value(samples, "seeker_channel_results_stored") == 1
    assert value(samples, "seeker_channel_database_up") == 1
    assert len(counted) == 1
    clock.advance(1)
    assert value(scrape(channel), "seeker_channel_results_stored") == 2
    assert len(counted) == 2


def test_a_channel_database_outage_shows_as_database_up_0(results, channel):
    results.results = Unanswered()
    samples = scrape(channel)
    assert value(samples, "seeker_channel_database_up") == 0
    assert "seeker_channel_results_stored" not in names(samples)
