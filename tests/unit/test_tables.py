"""What the CLI prints for people: helpers with their GPUs, a task's
summary, results with the canonical one starred."""

from __future__ import annotations

from seeker.cli.tables import helpers_table, results_table, size, task_summary

GiB = 1024**3


def test_helpers_show_state_load_memory_and_each_gpu_with_its_memory_and_use():
    gpus = [
        {
            "index": 0,
            "name": "NVIDIA H100",
            "memory_total": 80 * GiB,
            "memory_free": 70 * GiB,
            "utilization": 35.0,
        },
        {
            "index": 1,
            "name": "NVIDIA H100",
            "memory_total": 80 * GiB,
            "memory_free": 80 * GiB,
            "utilization": None,
        },
    ]
    out = helpers_table(
        [
            {
                "name": "gpu-1",
                "helper_id": "a",
                "url": "http://gpu-1:7072",
                "slots": 4,
                "running": 1,
                "online": True,
                "failures": 0,
                "last_seen": "2026-11-22T15:00:00+00:00",
                "resources": {
                    "cpus": 32,
                    "cpu_load": 3.2,
                    "memory_total": 256 * GiB,
                    "memory_available": 200 * GiB,
                    "gpus": gpus,
                },
            },
            {
                "name": "cpu-1",
                "helper_id": "b",
                "url": "http://cpu-1:7072",
                "slots": 2,
                "online": False,
                "failures": 2,
                "resources": {"cpus": 8},
            },
            {
                "name": "behind-nat",
                "helper_id": "c",
                "mode": "pull",
                "url": None,
                "slots": 1,
                "prefetch": 2,
                "running": 2,
                "online": True,
                "resources": {"cpus": 4},
            },
        ]
    )
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["NAME", "STATE", "MODE", "URL", "RUNNING"]
    assert lines[1].split()[:8] == [
        "gpu-1",
        "online",
        "push",
        "http://gpu-1:7072",
        "1/4",
        "32",
        "3.20",
        "200.0GiB/256.0GiB",
    ]
    assert "NVIDIA H100" in lines[2] and "10.0GiB used/80.0GiB" in lines[2]
    assert "35% busy" in lines[2]
    assert "0B used/80.0GiB" in lines[3] and "busy" not in lines[3]
    assert lines[4].split()[:2] == ["cpu-1", "offline"]
    # one running, one waiting in its queue of 2 (--prefetch)
    assert lines[5].split()[:5] == ["behind-nat", "online", "pull", "-", "2/1+2"]


def test_no_helpers():
    assert helpers_table([]) == "no helpers registered"


def test_sizes():
    assert [size(None), size(0), size(512), size(3 * GiB)] == ["-", "0B", "512B", "3.0GiB"]


def test_a_task_summary_says_why_it_waits_and_where_replicas_disagree():
    task = {
        "task_id": "t1",
        "state": "running",
        "image": "img",
        "command": ["run"],
        "replicas": 3,
        "policy": {"kind": "quorum", "quorum": 2, "max_replicas": 5},
        "votes": [
            {"output_digest": "sha256:" + "a" * 64, "helpers": ["h1"]},
            {"output_digest": "sha256:" + "b" * 64, "helpers": ["h2"]},
        ],
        "wait_reason": "1 of 1 replicas unplaced; 3 helpers: 3 already has a replica",
    }
    out = task_summary(task)
    assert "replicas  3, policy quorum 2 (at most 5 replicas)" in out
    assert "disagree  aaaaaaaaaaaa: h1; bbbbbbbbbbbb: h2" in out
    assert "waiting   1 of 1 replicas unplaced" in out


def test_results_star_the_canonical_one_and_show_cut_logs():
    results = [
        {
            "helper_name": "h1",
            "helper_id": "a",
            "attempt": 1,
            "status": "succeeded",
            "exit_code": 0,
            "output_digest": "sha256:" + "c" * 64,
            "canonical": True,
            "stdout": "out\n",
            "stdout_truncated": True,
        },
        {
            "helper_name": "h2",
            "helper_id": "b",
            "attempt": 2,
            "status": "cancelled",
            "exit_code": None,
            "output_digest": "sha256:" + "d" * 64,
            "error": "cancelled by user",
        },
    ]
    lines = results_table(results, logs=True).splitlines()
    assert lines[1].startswith("*") and "h1" in lines[1]
    assert not lines[2].startswith("*") and "cancelled by user" in lines[2]
    assert "--- stdout of h1 attempt 1 (truncated)" in lines
