"""The helper's /metrics: containers counted by status with their duration,
its GPUs, outbox and input cache as its status says, and the outbox's
deliveries (more in test_metrics.py, which reads every service's)."""

from __future__ import annotations

from test_executor import FakeOutbox
from test_metrics import HELPER_ID, GiB, make_executor, samples_of, scrape, value

from helper.app import create_app as helper_app
from helper.executor import Executor
from helper.metrics import HelperMetrics
from helper.models import Assignment
from helper.outbox import Outbox
from helper.runs import RunOutcome
from serving.http import Unreachable
from tests.auth_support import receipt_for


def run_to_end(executor: Executor, box: FakeOutbox, task_id="t1") -> None:
    a = Assignment(
        task_id=task_id,
        attempt=1,
        helper_id=HELPER_ID,
        image="busybox:1.36",
        receipt=receipt_for(task_id, HELPER_ID, 1, "t"),
    )
    executor.submit(a)
    assert box.finished.wait(10)
    assert executor.wait_run(a.key, 10)


def test_containers_are_counted_by_status_with_their_duration(clock):
    metrics = HelperMetrics()
    ended = RunOutcome("succeeded", 0, started_at=clock(), finished_at=clock.advance(42))
    executor, box = make_executor(ended, metrics)
    run_to_end(executor, box)
    client = helper_app(executor=executor, token="t", metrics=metrics).test_client()
    samples = scrape(client)
    assert value(samples, "seeker_helper_containers_total", status="succeeded") == 1
    assert value(samples, "seeker_helper_containers_total", status="failed") == 0
    duration = "seeker_helper_container_duration_seconds"
    assert value(samples, f"{duration}_count", status="succeeded") == 1
    assert value(samples, f"{duration}_sum", status="succeeded") == 42.0
    assert value(samples, "seeker_helper_slots") == 2
    assert value(samples, "seeker_helper_containers_running") == 0


def test_a_run_that_never_started_counts_without_a_duration():
    metrics = HelperMetrics()
    executor, box = make_executor(RunOutcome("error", error="no such image"), metrics)
    run_to_end(executor, box)
    samples = scrape(helper_app(executor=executor, token="t", metrics=metrics).test_client())
    assert value(samples, "seeker_helper_containers_total", status="error") == 1
    assert ("seeker_helper_container_duration_seconds_count", (("status", "error"),)) not in samples


def test_gpu_use_and_the_outbox_come_from_the_helpers_status():
    executor, _ = make_executor(RunOutcome("succeeded", 0))
    gpus = [
        {
            "index": 0,
            "name": "H100",
            "uuid": "GPU-0",
            "memory_total": 80 * GiB,
            "memory_free": 60 * GiB,
            "utilization": 35.0,
        },
        {
            "index": 1,
            "name": "H100",
            "uuid": "GPU-1",
            "memory_total": 80 * GiB,
            "memory_free": 80 * GiB,
            "utilization": None,  # NVML could not tell
        },
    ]

    def describe():
        return {"name": "gpu-1", "outbox": 3, "resources": {"cpus": 8, "gpus": gpus}}

    client = helper_app(executor=executor, token="t", describe=describe).test_client()
    samples = scrape(client)
    gpu0 = {"gpu": "0", "uuid": "GPU-0", "model": "H100"}
    gpu1 = {"gpu": "1", "uuid": "GPU-1", "model": "H100"}
    assert value(samples, "seeker_helper_gpu_memory_total_bytes", **gpu0) == 80 * GiB
    assert value(samples, "seeker_helper_gpu_memory_used_bytes", **gpu0) == 20 * GiB
    assert value(samples, "seeker_helper_gpu_memory_used_bytes", **gpu1) == 0
    assert value(samples, "seeker_helper_gpu_utilization_ratio", **gpu0) == 0.35
    assert ("seeker_helper_gpu_utilization_ratio", tuple(sorted(gpu1.items()))) not in samples
    assert value(samples, "seeker_helper_outbox_pending") == 3


def test_outbox_deliveries_and_failures_are_counted_by_kind(tmp_path):
    metrics = HelperMetrics()
    channel_up = []

    def post_result(payload):
        if not channel_up:
            raise Unreachable("channel down")

    box = Outbox(tmp_path, metrics.counted({"result": post_result, "event": lambda p: None}))
    box.put("result", {"n": 1})
    box.put("event", {"n": 1})
    assert not box.flush_once()
    channel_up.append(True)
    assert box.flush_once()
    deliveries = "seeker_helper_outbox_deliveries_total"
    samples = samples_of(metrics)
    assert value(samples, deliveries, kind="result", outcome="failed") == 1
    assert value(samples, deliveries, kind="result", outcome="delivered") == 1
    assert value(samples, deliveries, kind="event", outcome="delivered") == 1
    assert value(samples, deliveries, kind="event", outcome="failed") == 0


def test_the_input_cache_counters_come_from_the_helpers_status():
    executor, _ = make_executor(RunOutcome("succeeded", 0))
    cache = {
        "hits": 4,
        "misses": 2,
        "bytes_fetched": 5 * GiB,
        "evictions": 1,
        "entries": 2,
        "bytes": 3 * GiB,
        "cap": 20 * GiB,
    }

    def describe():
        return {"name": "gpu-1", "outbox": 0, "input_cache": cache, "resources": {}}

    samples = scrape(helper_app(executor=executor, token="t", describe=describe).test_client())
    assert value(samples, "seeker_helper_input_cache_hits_total") == 4
    assert value(samples, "seeker_helper_input_cache_misses_total") == 2
    assert value(samples, "seeker_helper_input_cache_fetched_bytes_total") == 5 * GiB
    assert value(samples, "seeker_helper_input_cache_evictions_total") == 1
    assert value(samples, "seeker_helper_input_cache_bytes") == 3 * GiB
    assert value(samples, "seeker_helper_input_cache_cap_bytes") == 20 * GiB
