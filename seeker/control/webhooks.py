"""Webhooks: every event of the log POSTed to a URL as JSON, in order,
retried until the receiver acknowledges, resuming after a restart from where
it stopped. With a secret, each post is signed (see `sign_webhook`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable

import requests
from pymongo.database import Database

from seeker.store.events import EventLog
from serving.worker import Worker

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Seeker-Signature"
SIGNATURE_TOLERANCE = 300.0  # seconds a receiver should accept a signature for


def sign_webhook(secret: str, body: bytes, now: float) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>`: the value of
    the X-Seeker-Signature header of a webhook post. The time is signed too,
    so a receiver can refuse a replayed post."""
    t = str(int(now))
    mac = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_webhook(
    secret: str, header: str, body: bytes, now: float, tolerance: float = SIGNATURE_TOLERANCE
) -> bool:
    """For a receiver: the post's body is the seeker's, signed less than
    `tolerance` seconds ago (compare in constant time, as this does)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t = parts.get("t", "")
    if not t.isdigit() or abs(now - int(t)) > tolerance:
        return False
    expected = sign_webhook(secret, body, int(t))
    return hmac.compare_digest(expected.encode(), f"t={t},v1={parts.get('v1', '')}".encode())


class WebhookWatcher:
    """Posts every event to `url` as JSON, in order; a failed post (no answer,
    or not 2xx) is retried with backoff (1 s doubling to 60 s) until it
    succeeds. Its position is kept in the database, so a restarted seeker
    carries on where it stopped: delivery is at least once. With a `secret`
    each post carries an X-Seeker-Signature header (`sign_webhook`). Of a
    group of seekers, only the one that `may_send()` (the lease holder)
    posts; `wake()` it when events may have come from the others."""

    def __init__(
        self,
        log_: EventLog,
        url: str,
        db: Database,
        timeout: float = 5.0,
        max_backoff: float = 60.0,
        secret: str | None = None,
        clock: Callable[[], float] = time.time,
        may_send: Callable[[], bool] = lambda: True,
    ):
        self.may_send = may_send
        self.log = log_
        self.url = url
        self.secret = secret
        self.clock = clock
        self.cursors = db["webhook_cursors"]
        self.timeout = timeout
        self.session = requests.Session()
        self._sender = Worker(f"webhook {url}", self.deliver_pending, 1.0, max_backoff)
        log_.watch(lambda event: self._sender.wake())
        # a webhook new to this database starts from now, not from the whole log
        last = self.log.events.find_one(sort=[("seq", -1)])
        self.cursors.update_one(
            {"_id": url}, {"$setOnInsert": {"seq": last["seq"] if last else 0}}, upsert=True
        )

    def position(self) -> int:
        return self.cursors.find_one({"_id": self.url})["seq"]

    def wake(self) -> None:
        self._sender.wake()

    def deliver_pending(self) -> bool:
        """Post all that is pending, in order; False at the first failure."""
        if not self.may_send():
            return True  # another seeker of the group posts
        while events := self.log.since(self.position()):
            if not self._post(events):
                return False
        return True

    def _post(self, events: list[dict]) -> bool:
        for event in events:
            body = json.dumps({**event, "at": event["at"].isoformat()}).encode()
            headers = {"Content-Type": "application/json"}
            if self.secret:
                headers[SIGNATURE_HEADER] = sign_webhook(self.secret, body, self.clock())
            try:
                resp = self.session.post(self.url, data=body, headers=headers, timeout=self.timeout)
                ok = 200 <= resp.status_code < 300
            except requests.RequestException as exc:
                log.info("webhook %s: event %d not delivered: %s", self.url, event["seq"], exc)
                return False
            if not ok:
                log.info(
                    "webhook %s: event %d answered %d", self.url, event["seq"], resp.status_code
                )
                return False
            self.cursors.update_one({"_id": self.url}, {"$set": {"seq": event["seq"]}}, upsert=True)
        return True

    def start(self) -> WebhookWatcher:
        self._sender.start()
        return self

    def stop(self) -> None:
        self._sender.stop()
