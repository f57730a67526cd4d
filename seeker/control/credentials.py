"""Helper credentials: the secret the seeker gives each helper when it
registers with the join token.

A credential is `hc1.<helper id>.<nonce>.<mac>`, the mac an HMAC-SHA256 of
the helper id and nonce under a key kept in the seeker's data directory. The
database holds only the nonce, so its contents alone make no credential.
The helper sends it with everything it tells the seeker; the seeker sends
it with everything it asks of the helper, which is how the helper knows an
assignment comes from its seeker.

- Issued (a new nonce) at every registration made with the join token: a
  restarted helper gets a new one. The one before stays valid for a grace
  period, for requests already on their way.
- A registration made with the credential itself (the heartbeat) keeps it.
- Revoked when the helper is purged or removed: its nonce goes with it."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from seeker.placement.capacity import as_utc
from serving.principals import ROTATION_GRACE, Principal

HELPER = "helper"  # the role of a helper credential
JOIN = "join"  # the role of the join token: registering a helper
PREFIX = "hc1"


class HelperCredentials:
    def __init__(
        self,
        key: bytes,
        helpers,
        clock: Callable[[], datetime],
        grace: timedelta = ROTATION_GRACE,
    ):
        self._key = key
        self.helpers = helpers  # HelperStore: auth_of(helper_id)
        self.clock = clock
        self.grace = grace

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_hex(16)

    def _mac(self, helper_id: str, nonce: str) -> str:
        return hmac.new(self._key, f"{helper_id}\n{nonce}".encode(), hashlib.sha256).hexdigest()

    def mint(self, helper_id: str, nonce: str) -> str:
        return f"{PREFIX}.{helper_id}.{nonce}.{self._mac(helper_id, nonce)}"

    def for_helper(self, helper_id: str) -> str | None:
        """The current credential of a registered helper (None: none issued)."""
        auth = self.helpers.auth_of(helper_id)
        return self.mint(helper_id, auth["nonce"]) if auth else None

    def verify(self, given: str) -> Principal | None:
        """A helper Principal for a live credential of a registered helper."""
        head, _, rest = given.partition(".")
        if head != PREFIX:
            return None
        helper_id, _, tail = rest.rpartition(".")  # ids may contain dots; nonce and mac not
        helper_id, _, nonce = helper_id.rpartition(".")
        if not helper_id or not nonce:
            return None
        if not hmac.compare_digest(tail.encode(), self._mac(helper_id, nonce).encode()):
            return None  # not made by this seeker
        auth = self.helpers.auth_of(helper_id)
        if auth is None:
            return None  # purged or removed: revoked
        if hmac.compare_digest(nonce, auth["nonce"]):
            return Principal(frozenset({HELPER}), helper_id)
        previous, rotated = auth.get("previous"), as_utc(auth.get("rotated_at"))
        recent = rotated is not None and self.clock() - rotated < self.grace
        if previous and recent and hmac.compare_digest(nonce, previous):
            return Principal(frozenset({HELPER}), helper_id)
        return None
