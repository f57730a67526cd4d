"""TaskStore.list with `now`: the newest tasks looked for in windows of time
(seeker/store/newest.py) give the pages the whole collection gives, on every
backend, and a busy seeker's first page is one query of the last minute."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import T0

from seeker.store.newest import FIRST_WINDOW
from seeker.store.task_document import new_task
from seeker.store.tasks import TaskStore

SPEC = {"image": "busybox:1.36"}
NOW = T0 + timedelta(days=800)


def at(when, prefix: str, n: int, state: str = "pending") -> list[dict]:
    docs = [new_task(f"{prefix}{i:03d}", SPEC, when) for i in range(n)]
    for doc in docs:
        doc["state"] = state
    return docs


@pytest.fixture
def tasks(mongo_db) -> TaskStore:
    store = TaskStore(mongo_db)
    store.ensure_indexes()
    # bursts far apart, and many created in the same millisecond (ties)
    docs = (
        at(T0, "old", 12, "succeeded")
        + at(NOW - timedelta(days=500), "year", 9, "failed")
        + at(NOW - timedelta(days=3), "days", 30, "succeeded")
        + at(NOW - timedelta(minutes=5), "tie", 25)
        + [new_task(f"new{i:03d}", SPEC, NOW - timedelta(seconds=i)) for i in range(40)]
    )
    store.tasks.insert_many(docs)
    return store


def walk(tasks: TaskStore, limit: int, **kwargs) -> list[list[str]]:
    """Every page, from the first, each after the last task of the one before."""
    pages, after = [], None
    while True:
        page = tasks.list(limit=limit, after=after, **kwargs)
        pages.append([t["_id"] for t in page])
        if len(page) < limit:
            return pages
        after = (page[-1]["created_at"], page[-1]["_id"])


@pytest.mark.parametrize("limit", [1, 7, 50, 200])
@pytest.mark.parametrize("state", [None, "succeeded", "pending", "running"])
def test_windows_give_the_pages_the_whole_collection_gives(tasks, limit, state):
    windowed = walk(tasks, limit, state=state, now=NOW)
    assert windowed == walk(tasks, limit, state=state)
    listed = [t for page in windowed for t in page]
    assert (
        len(listed)
        == len(set(listed))
        == tasks.tasks.count_documents({"state": state} if state else {})
    )


def test_a_page_after_a_tie_keeps_the_rest_of_the_tie(tasks):
    first = tasks.list(limit=50, now=NOW)
    assert [t["_id"] for t in first[:40]] == [f"new{i:03d}" for i in range(40)]
    assert {t["_id"][:3] for t in first[40:]} == {"tie"}  # 10 of the 25
    after = (first[-1]["created_at"], first[-1]["_id"])
    rest = [t["_id"] for t in tasks.list(limit=20, after=after, now=NOW)]
    assert rest[:15] == sorted({f"tie{i:03d}" for i in range(25)} - {t["_id"] for t in first})[::-1]
    assert {t[:4] for t in rest[15:]} == {"days"}


def test_a_busy_seekers_first_page_is_one_query_of_the_last_minute(tasks):
    finds, real = [], tasks.tasks

    class Recorded:
        def __getattr__(self, name):
            return getattr(real, name)

        def find(self, query, *args, **kwargs):
            finds.append(query)
            return real.find(query, *args, **kwargs)

    tasks.tasks = Recorded()
    assert len(tasks.list(limit=30, now=NOW)) == 30
    assert finds == [{"created_at": {"$gte": NOW - FIRST_WINDOW}}]
    finds.clear()
    tasks.list(limit=30, state="pending", now=NOW)  # the state first: its index
    assert [list(q) for q in finds] == [["state", "created_at"]] * len(finds)
    assert not any("$or" in q for q in finds)


@pytest.mark.parametrize("limit", [3, 50, 200])
def test_the_newest_kept_from_the_list_before_gives_the_same_pages(tasks, limit):
    # the hint: where the newest task was at the last list; tasks that come
    # after, and one written late with an older time (another seeker's
    # clock), are listed all the same
    assert tasks.list(limit=limit, now=NOW) == tasks.list(limit=limit)
    later = [new_task(f"z{i:02d}", SPEC, NOW + timedelta(seconds=i)) for i in range(5)]
    tasks.tasks.insert_many([*later, new_task("skewed", SPEC, NOW - timedelta(seconds=90))])
    for when in (NOW, NOW + timedelta(minutes=1)):
        assert tasks.list(limit=limit, now=when) == tasks.list(limit=limit)
    assert walk(tasks, limit, now=NOW) == walk(tasks, limit)
