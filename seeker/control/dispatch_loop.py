"""The placement loop: one thread that runs the dispatcher's passes
(seeker/control/dispatcher.py) whenever there may be something to place."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from serving.worker import Worker

if TYPE_CHECKING:
    from seeker.control.dispatcher import Dispatcher

# the submitted tasks whose ids a pass is given at most: past them, it
# looks for the tasks new to the queue as after a kick
JOINED_MAX = 200


class DispatchLoop(Worker):
    """Runs `dispatch_pending` on a thread whenever kicked (a task given
    back or released, and by the periodic sweep), when tasks were submitted,
    or when room was made (a helper joined or answered, a run ended)."""

    def __init__(self, dispatcher: Dispatcher | None):
        self.dispatcher = dispatcher
        self._news = True  # a kick or a submit since the last pass began
        # the tasks submitted since, when they are all the news (None: a
        # kick, the news may be anywhere in the queue)
        self._joined: list[str] | None = None
        self._news_lock = threading.Lock()
        super().__init__("dispatch", self._pass)

    def kick(self) -> None:
        """A task may have joined the queue: a pass, which tells every task
        new to the queue why it waits if none can be placed."""
        with self._news_lock:
            self._news, self._joined = True, None
        self.wake()

    def joined(self, task_ids: list[str] | None = None) -> None:
        """Tasks were submitted: news, at the queue's tail (the newest).
        `task_ids`: theirs (None: not known)."""
        with self._news_lock:
            if not self._news:
                self._joined = []
            self._news = True
            self._joined = _more(self._joined, task_ids)
        self.wake()

    def room(self) -> None:
        """A slot or a helper may be free: a pass, which stops reading the
        queue once no room is left."""
        self.wake()

    def _pass(self) -> bool:
        with self._news_lock:
            news, joined = self._news, self._joined
            self._news, self._joined = False, None
        try:
            self.dispatcher.dispatch_pending(news, joined if news else None)
        except Exception:
            # the pass that tries again (after the backoff) has the news too
            with self._news_lock:
                if news:
                    self._joined = _more(joined, self._joined if self._news else [])
                    self._news = True
            raise
        return True


def _more(joined: list[str] | None, task_ids: list[str] | None) -> list[str] | None:
    """The submitted tasks' ids with `task_ids` too; None when either is
    not known or they are too many to carry."""
    if joined is None or task_ids is None or len(joined) + len(task_ids) > JOINED_MAX:
        return None
    return joined + task_ids
