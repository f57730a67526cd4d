"""A placement pass's queue: the pending tasks, oldest first, read as the
pass goes (TaskStore.queue in seeker/store/tasks.py), and what it did not
get to, kept in hand for the next pass (seeker/control/dispatcher.py)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator


class Queue:
    """The pending tasks, oldest first: `head` in hand (read in one query, or
    kept from the pass before), then, unless `whole` (the head was all the
    queue held), the others, from `rest()`, which reads only when the caller
    takes the whole head. Tasks already taken are not given twice.

    What the caller did not take stays in hand (`unread`): a pass that runs
    out of room stops without another query, and the next pass made on
    room alone may start from it (SecantusDB sorts every pending task to
    find the oldest few, so a query per pass costs in proportion to the
    queue)."""

    def __init__(self, head: Iterable[dict], whole: bool, rest: Callable[[], Iterator[dict]]):
        self._head = deque(head)
        self.whole = whole
        self._read_rest = rest
        self._rest: Iterator[dict] | None = None
        self._taken: set[str] = set()

    def __iter__(self) -> Queue:
        return self

    def __next__(self) -> dict:
        if self._head:
            return self._take(self._head.popleft())
        if self.whole:
            raise StopIteration
        if self._rest is None:
            self._rest = self._read_rest()
        for task in self._rest:
            if task["_id"] not in self._taken:
                return self._take(task)
        raise StopIteration

    def _take(self, task: dict) -> dict:
        self._taken.add(task["_id"])
        return task

    @property
    def taken(self) -> int:
        """How many tasks the caller took."""
        return len(self._taken)

    def unread(self) -> tuple[list[dict], bool]:
        """The tasks in hand the caller has not taken, oldest first, and
        whether they and those it took were the whole queue when read."""
        if self._rest is None:
            return list(self._head), self.whole
        if isinstance(self._rest, Queue):  # its own head: still in hand
            rest, whole = self._rest.unread()
            return [t for t in rest if t["_id"] not in self._taken], whole
        return [], False  # a cursor: the rest is not in hand

    def close(self) -> None:
        """No more is read: a cursor still open is closed at the server."""
        if self._rest is not None:
            self._rest.close()  # type: ignore[attr-defined]
