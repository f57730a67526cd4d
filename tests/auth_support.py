"""Secrets for tests: the receipt the seeker would make for an attempt, and
bearer headers. The channel derives its receipt key from its token unless
given one, as the seeker does."""

from __future__ import annotations

from serving import receipts

WELL_FORMED_RECEIPT = "rcpt1." + "0" * 64  # passes the schema; no channel accepts it


def receipt_for(task_id: str, helper_id: str, attempt: int, token: str) -> str:
    """The receipt a seeker sharing `token` with the channel makes."""
    return receipts.sign(receipts.receipt_key(None, token), task_id, helper_id, attempt)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def receipt_headers(result: dict, token: str) -> dict[str, str]:
    """Headers to post `result` (a dict with task_id, helper_id, attempt) to a channel."""
    return bearer(receipt_for(result["task_id"], result["helper_id"], result["attempt"], token))
