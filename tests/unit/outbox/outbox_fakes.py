"""What the outbox's tests share: handlers that deliver or fail as told,
an outbox over them, and its journal's lines."""

from __future__ import annotations

import json

from helper.outbox import Outbox


class Handler:
    """Delivers by appending to `got`; raises the queued errors first, one per call."""

    def __init__(self, *errors: Exception):
        self.got: list[dict] = []
        self.errors = list(errors)

    def __call__(self, payload: dict) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.got.append(payload)


def outbox(directory, results, events, lanes=None) -> Outbox:
    """Results and events in one lane (in order) unless `lanes` says otherwise."""
    lanes = lanes or {"result": "one", "event": "one"}
    return Outbox(directory, {"result": results, "event": events}, lanes=lanes)


def journal(directory) -> list[dict]:
    """Every line of the journal files, in order."""
    return [
        json.loads(line)
        for path in sorted(directory.glob("journal-*.jsonl"))
        for line in path.read_text().splitlines()
    ]
