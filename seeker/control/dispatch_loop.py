"""The placement loop: one thread that runs the dispatcher's passes
(seeker/control/dispatcher.py) whenever there may be something to place."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from serving.worker import Worker

if TYPE_CHECKING:
    from seeker.control.dispatcher import Dispatcher


class DispatchLoop(Worker):
    """Runs `dispatch_pending` on a thread whenever kicked (a task given
    back or released, and by the periodic sweep), when tasks were submitted,
    or when room was made (a helper joined or answered, a run ended)."""

    def __init__(self, dispatcher: Dispatcher | None):
        self.dispatcher = dispatcher
        self._news = True  # a kick or a submit since the last pass began
        self._anywhere = True  # a kick: the news may be anywhere in the queue
        self._news_lock = threading.Lock()
        super().__init__("dispatch", self._pass)

    def kick(self) -> None:
        """A task may have joined the queue: a pass, which tells every task
        new to the queue why it waits if none can be placed."""
        with self._news_lock:
            self._news = self._anywhere = True
        self.wake()

    def joined(self) -> None:
        """Tasks were submitted: news, at the queue's tail (the newest)."""
        with self._news_lock:
            self._news = True
        self.wake()

    def room(self) -> None:
        """A slot or a helper may be free: a pass, which stops reading the
        queue once no room is left."""
        self.wake()

    def _pass(self) -> bool:
        with self._news_lock:
            news, anywhere = self._news, self._anywhere
            self._news = self._anywhere = False
        try:
            self.dispatcher.dispatch_pending(news, at_tail=news and not anywhere)
        except Exception:
            # the pass that tries again (after the backoff) has the news too
            with self._news_lock:
                self._news |= news
                self._anywhere |= anywhere
            raise
        return True
