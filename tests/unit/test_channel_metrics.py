"""GET /metrics on the channel, read back with prometheus_client's own
parser: the Flask test client over a mongomock store and a fake clock."""

from __future__ import annotations

from test_channel_artifacts import post_result, result
from test_metrics import Unanswered, names, samples_of, scrape, value

from channel.app import create_app as channel_app
from channel.metrics import STORED_EVERY, ChannelMetrics

# --- the channel -----------------------------------------------------------------


def test_results_posted_stored_and_duplicates(channel):
    assert value(scrape(channel), "seeker_channel_results_stored") == 0
    for payload in (result(), result(), result(attempt=2, status="failed", exit_code=1)):
        assert post_result(channel, payload).status_code in (200, 201)
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
    resp = post_result(client, result())
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
    post = post_result(channel, result())
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
