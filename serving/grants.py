"""Input grants: the seeker's word that attempt N of a task, on one helper,
may read one input, which the channel checks before it describes or serves
that input to a helper.

A grant is an HMAC-SHA256 over (source, task id, helper id, attempt) under
the receipt key the seeker and the channel share (in another domain than
receipts, so neither can stand for the other). Unlike a receipt it carries
the attempt it was made for, `grant1~<task id>~<attempt>~<helper id>~<mac>`,
because a download names the file, not the attempt. The source is what the
task names: an artifact id, or a result's output `<task>/<helper>/<attempt>/<name>`.
A helper cannot make one, nor use one for a file its assignment does not
name, for another attempt or under another helper's id."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

PREFIX = "grant1"
GRANT = "grant"  # the role of a well-formed grant before it is checked
_SHAPE = re.compile(
    r"^grant1~([A-Za-z0-9_.-]{1,128})~([0-9]{1,19})~([A-Za-z0-9_.-]{1,128})~([0-9a-f]{64})$"
)
_DOMAIN = b"seeker input grant v1\n"


@dataclass(frozen=True)
class Holder:
    """The attempt a grant was made for."""

    task_id: str
    attempt: int
    helper_id: str


def output_source(task_id: str, helper_id: str, attempt: int, name: str) -> str:
    """The source of a result's artifact named by what made it."""
    return f"{task_id}/{helper_id}/{int(attempt)}/{name}"


def _mac(key: bytes, source: str, holder: Holder) -> str:
    message = f"{source}\n{holder.task_id}\n{holder.helper_id}\n{holder.attempt}".encode()
    return hmac.new(key, _DOMAIN + message, hashlib.sha256).hexdigest()


def sign(key: bytes, source: str, task_id: str, helper_id: str, attempt: int) -> str:
    holder = Holder(task_id, int(attempt), helper_id)
    return f"{PREFIX}~{task_id}~{int(attempt)}~{helper_id}~{_mac(key, source, holder)}"


def holder_of(given: str) -> Holder | None:
    """The attempt a well-formed grant names (None: not a grant)."""
    m = _SHAPE.match(given)
    return Holder(m.group(1), int(m.group(2)), m.group(3)) if m else None


def covers(key: bytes, given: str, sources: list[str]) -> bool:
    """Whether `given` is the seeker's grant for one of `sources` (each
    compared, so the time taken does not say which matched)."""
    holder = holder_of(given)
    if holder is None:
        return False
    mac = given.rsplit("~", 1)[1].encode()
    matched = [hmac.compare_digest(mac, _mac(key, s, holder).encode()) for s in sources]
    return any(matched)
