"""A page of documents newest first, without reading the whole collection.

SecantusDB serves a sort from an index only within a range of the index's
first field: `find().sort("created_at", -1).limit(100)` reads and sorts
every document (217 ms of its CPU with 10,000 tasks: bench/findings.md 51),
and the dashboard lists the newest tasks that way every 2 s. So a page is
looked for in a window of time back from where it starts (a minute first).
A window with nothing in it is passed over (the next one starts where it
ended) and the next is eight times as wide; a window with part of a page is
widened twice over from where it started, until it holds a page; past a
year, the rest of the collection is read. Each query reads the documents
in its window only. The documents outside a window are all older than
those in it, so a window that holds a page holds the newest page. Where
the newest document was the last time is kept as a hint: after a quiet
hour the first wide window would read the hour before it too. MongoDB
walks its index either way."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

FIRST_WINDOW = timedelta(minutes=1)
LAST_WINDOW = timedelta(days=366)  # wider than this: no lower bound at all


def newest_page(
    find: Callable[[dict], list[dict]],
    query: dict,
    limit: int,
    start: datetime,
    field: str,
    before: bool = False,
    newest: datetime | None = None,
) -> list[dict]:
    """`find(query)`'s first `limit` documents (`find` sorts newest first by
    `field` and cuts at `limit` or more), looked for in windows of `field`
    back from `start`: now, for a first page (later ones count too), or
    the time a page after another starts before (`before`: only earlier
    ones). `newest`: where the newest document was last time (a hint; any
    value gives the same page): what came since is read first, and the
    windows start there. `query` has no condition on `field`; SecantusDB
    plans a query by its first field, so an equality in it (`state`: an
    index over it and `field`) comes first."""
    latest = {"$lt": start} if before else {}
    page: list[dict] = []
    if newest is not None and newest < start:
        page = find({**query, field: {"$gte": newest, **latest}})
        if len(page) >= limit:
            return page[:limit]
        start, latest = newest, {"$lt": newest}
    anchor, window = start, FIRST_WINDOW
    while start - anchor + window <= LAST_WINDOW:
        docs = find({**query, field: {"$gte": anchor - window, **latest}})
        if len(page) + len(docs) >= limit:
            return (page + docs)[:limit]
        if docs:
            window *= 2
        else:  # nothing after anchor - window: start the next one there
            anchor -= window
            window *= 8
    return (page + find({**query, field: latest} if latest else query))[:limit]
