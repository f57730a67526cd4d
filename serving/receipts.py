"""Receipts: the seeker's word that it assigned attempt N of a task to a
helper, which the channel checks before it stores that attempt's result or
artifacts.

A receipt is an HMAC-SHA256 over (task id, helper id, attempt) with a key
only the seeker and the channel hold. The seeker puts it in each assignment
it pushes; the helper presents it (as its bearer secret) with the result.
A helper cannot make one for a task it was not given, nor reuse one for
another attempt or under another helper's id."""

from __future__ import annotations

import hashlib
import hmac
import re

PREFIX = "rcpt1."
RECEIPT = "receipt"  # the role a well-formed receipt gets before it is checked
_SHAPE = re.compile(r"^rcpt1\.[0-9a-f]{64}$")
_DERIVE = b"seeker receipt key v1"


def receipt_key(explicit: str | None, token: str) -> bytes:
    """The key given with --receipt-key, else one derived from the token, so
    that a seeker and a channel sharing one token agree without more set-up
    (and anyone with that token could make receipts: see docs/security.md)."""
    if explicit:
        return explicit.encode()
    return hmac.new(token.encode(), _DERIVE, hashlib.sha256).digest()


def _message(task_id: str, helper_id: str, attempt: int) -> bytes:
    # the parts cannot contain "\n" (ids are validated), so the split is unambiguous
    return f"{task_id}\n{helper_id}\n{int(attempt)}".encode()


def sign(key: bytes, task_id: str, helper_id: str, attempt: int) -> str:
    mac = hmac.new(key, _message(task_id, helper_id, attempt), hashlib.sha256)
    return PREFIX + mac.hexdigest()


def well_formed(given: str) -> bool:
    return bool(_SHAPE.match(given))


def valid(key: bytes, given: str, task_id: str, helper_id: str, attempt: int) -> bool:
    return hmac.compare_digest(given.encode(), sign(key, task_id, helper_id, attempt).encode())
