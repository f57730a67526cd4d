"""Results at scale: a channel holding 200,000 results (1,000,000 when
TEST_MONGO_URL is set).

Set-up: results shaped as the channel stores them (two attempts per task,
on the channel's own indexes, created by `ChannelServer`), bulk-inserted
with pymongo `insert_many` in batches of 1,000. The first 20,000 are timed;
if the rest would take longer than the set-up budget, fewer are stored,
and the notes say how many.

Ingest: a sample of results POSTed one by one to /api/v1/results of a real
`channel.server.ChannelServer` (cheroot, in this process) by
`ChannelClient.post_result`, each with its receipt, against the same number
inserted one by one with pymongo `insert_one` (what the store does),
alternating in blocks of 100. Query: GET /api/v1/results?task_id=... through `ChannelClient.results`
against the store's own query (find by task_id, sorted by _id, limit 101)
made straight with pymongo on the same database, alternating one by one
over random tasks; p50 and p99 of each. The ratio is the API's own cost
(HTTP, token or receipt check, Flask, validation, JSON, the artifact lookup).
The database runs in a process of its own (or is TEST_MONGO_URL)."""

from __future__ import annotations

import os
import random
import secrets
import time
from datetime import datetime, timezone

from bench.common import (
    MongoServer,
    fmt_ms,
    fmt_ratio,
    main,
    percentile,
    ratio,
)
from bench.common import report as make_report
from channel.client import ChannelClient
from channel.server import ChannelServer
from serving import receipts

NAME = "results"
FIRST = 20_000
BATCH = 1_000
DIGEST = "sha256:" + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def result(task: int, attempt: int, when: datetime) -> dict:
    """A result as a helper posts it (JSON-ready)."""
    return {
        "task_id": f"task{task:09d}",
        "helper_id": f"helper-{attempt}",
        "helper_name": f"helper-{attempt}",
        "attempt": attempt,
        "image": "seeker-demo:latest",
        "status": "succeeded",
        "exit_code": 0,
        "error": None,
        "stdout": f"result of task {task}\n",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "output_digest": DIGEST,
        "started_at": when.isoformat(),
        "finished_at": when.isoformat(),
        "sent_at": when.isoformat(),
    }


def stored(task: int, attempt: int, when: datetime) -> dict:
    """The same result as the channel stores it."""
    doc = result(task, attempt, when)
    for key in ("started_at", "finished_at", "sent_at"):
        doc[key] = when
    doc["received_at"] = when
    doc["result_id"] = f"{doc['task_id']}.{attempt}"
    return doc


def bulk_load(coll, target: int, budget_s: float) -> tuple[int, float, float]:
    """Insert up to `target` results; returns (stored, seconds for the
    first FIRST, seconds in all)."""
    when = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    first_s, n = 0.0, 0
    while n < target:
        docs = [stored(i // 2, i % 2 + 1, when) for i in range(n, min(n + BATCH, target))]
        coll.insert_many(docs, ordered=False)
        n += len(docs)
        if n == min(FIRST, target):
            first_s = time.perf_counter() - t0
            rate = n / first_s
            if (target - n) / rate > budget_s:  # size to the budget, and say so
                target = n + int(budget_s * rate) // BATCH * BATCH
    return n, first_s, time.perf_counter() - t0


def run(quick: bool = False) -> dict:
    external = bool(os.environ.get("TEST_MONGO_URL"))
    wanted = 20_000 if quick else (1_000_000 if external else 200_000)
    budget = 20.0 if quick else 240.0
    n_ingest, n_query = (200, 100) if quick else (2_000, 400)
    token = secrets.token_urlsafe(16)
    key = receipts.receipt_key(None, token)
    rng = random.Random(8)
    with MongoServer(NAME) as db:
        client = db.client()
        database = client[db.db_name("channel")]
        channel = ChannelServer(database, token, port=0).start()
        try:
            coll = database["results"]
            n, first_s, load_s = bulk_load(coll, wanted, budget)
            api = ChannelClient(channel.url, token)
            # ingest, alternating blocks of 100
            when = datetime.now(timezone.utc)
            api_s = raw_s = 0.0
            base = n // 2 + 10
            for block in range(0, n_ingest, 100):
                t0 = time.perf_counter()
                for i in range(block, block + 100):
                    doc = result(base + i, 1, when)  # with its receipt, as a helper posts it
                    receipt = receipts.sign(key, doc["task_id"], doc["helper_id"], 1)
                    api.post_result(doc, receipt=receipt)
                t1 = time.perf_counter()
                for i in range(block, block + 100):
                    coll.insert_one(stored(base + n_ingest + i, 1, when))
                raw_s += time.perf_counter() - t1
                api_s += t1 - t0
            # queries, alternating one by one
            tasks = [f"task{rng.randrange(n // 2):09d}" for _ in range(n_query)]
            api.results(tasks[0])
            q_api, q_raw = [], []
            for task_id in tasks:
                t0 = time.perf_counter()
                page = api.results(task_id)
                t1 = time.perf_counter()
                docs = list(coll.find({"task_id": task_id}).sort("_id", 1).limit(101))
                t2 = time.perf_counter()
                if len(page["results"]) != len(docs) or not docs:
                    raise RuntimeError(f"{task_id}: API {len(page['results'])}, db {len(docs)}")
                q_api.append(t1 - t0)
                q_raw.append(t2 - t1)
            total = coll.estimated_document_count()
        finally:
            channel.stop()
            client.close()
    api_rate, raw_rate = n_ingest / api_s, n_ingest / raw_s
    a50, a99 = percentile(q_api, 50), percentile(q_api, 99)
    r50, r99 = percentile(q_raw, 50), percentile(q_raw, 99)
    rows = [
        [
            f"ingest, results per second ({n_ingest:,} one by one; higher is better)",
            f"{api_rate:.0f}",
            f"{raw_rate:.0f}",
            fmt_ratio(ratio(api_rate, raw_rate)),
        ],
        [
            f"query by task_id, p50 ({n_query} queries)",
            fmt_ms(a50),
            fmt_ms(r50),
            fmt_ratio(ratio(a50, r50)),
        ],
        [
            f"query by task_id, p99 ({n_query} queries)",
            fmt_ms(a99),
            fmt_ms(r99),
            fmt_ratio(ratio(a99, r99)),
        ],
        ["bulk set-up, results per second (insert_many)", "", f"{n / load_s:.0f}", ""],
    ]
    notes = [
        f"{total:,} results in the channel when queried ({n:,} bulk-loaded in {load_s:.0f} s, "
        f"the first {min(FIRST, n):,} in {first_s:.1f} s; asked for {wanted:,}"
        + (
            f", cut to what fits a {budget:.0f} s set-up budget at the measured rate)."
            if n < wanted
            else ")."
        ),
        "Seeker: the channel's REST API (ChannelClient over HTTP to cheroot); baseline: the "
        "same operation straight with pymongo on the same database. Database: " + db.kind + ".",
    ]
    return make_report(
        NAME,
        f"Results at scale: {total:,} results in the channel",
        rows,
        notes=notes,
        quick=quick,
        data={
            "wanted": wanted,
            "loaded": n,
            "total": total,
            "first_20k_s": first_s,
            "load_s": load_s,
            "ingest_api_per_s": api_rate,
            "ingest_raw_per_s": raw_rate,
            "query_api_p50_s": a50,
            "query_api_p99_s": a99,
            "query_raw_p50_s": r50,
            "query_raw_p99_s": r99,
        },
    )


if __name__ == "__main__":
    main(run, NAME)
