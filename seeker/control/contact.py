"""Contacting a helper: what a push's answer means, and where pushes run
(inline, or on a pool of threads, so that no helper holds up a placement
pass or another helper's push)."""

from __future__ import annotations

from concurrent.futures import Future
from enum import Enum

from serving.http import ApiError


def is_busy(exc: Exception) -> bool:
    """A full helper (429) was reached fine: not a failed contact."""
    return isinstance(exc, ApiError) and exc.status == 429


def is_unrecognised(exc: Exception) -> bool:
    """The helper does not know the credential the seeker sent: it has not
    read the answer to its registration yet, or it lost its credential and
    will join again. Neither a run nor a sign of life; probes decide."""
    return isinstance(exc, ApiError) and exc.status == 401


def is_refusal(exc: Exception) -> bool:
    """The helper answered that it will not run this task (its image or mount
    policy): not a failed contact either."""
    return isinstance(exc, ApiError) and exc.status == 403


class PushOutcome(str, Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"  # 403: the helper's policy; it was reached fine
    BUSY = "busy"  # 429: it is full; reached fine
    UNRECOGNISED = "unrecognised"  # 401: it does not know its credential yet
    FAILED = "failed"  # unreachable, timed out, an error answer: a failed contact
    PURGED = "purged"  # failed, and that was its last failed contact


class InlinePushes:
    """Pushes made on the placement pass's own thread, one after the other
    (the unit tests' default, where a failed push goes to the next candidate
    within the pass). A seeker process pushes on a thread pool instead."""

    def submit(self, fn, *args) -> Future:
        done: Future = Future()
        try:
            done.set_result(fn(*args))
        except BaseException as exc:  # as an executor would hand it back
            done.set_exception(exc)
        return done


def classify(exc: Exception) -> PushOutcome:
    if is_refusal(exc):
        return PushOutcome.REFUSED
    if is_busy(exc):
        return PushOutcome.BUSY
    if is_unrecognised(exc):
        return PushOutcome.UNRECOGNISED
    return PushOutcome.FAILED
