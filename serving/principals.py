"""Who a request comes from: a Principal (its roles, and for a helper or a
receipt what it is bound to), and the Authenticator that turns a bearer
secret into one. No Flask here, so domain modules may import a Principal;
the hooks that check each request are in serving.access. No secret is ever
compared with `==` or written to a log."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

USER = "user"
# How long a secret replaced by a new one stays good, for requests already on
# their way: the seeker honours a helper's credential before the newest this
# long, and the helper takes the seeker's presenting it as long.
ROTATION_GRACE = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    roles: frozenset[str]
    subject: str | None = None  # the helper id of a helper credential, the receipt itself

    def has(self, role: str) -> bool:
        return role in self.roles


def secret_equal(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(given.encode(), expected.encode())


class Authenticator:
    """Static tokens, each granting some roles, and optional verifiers for
    secrets that are not known in advance (helper credentials, receipts).

    A verifier takes the presented secret and returns a Principal or None."""

    def __init__(
        self,
        tokens: dict[str, str | None] | None = None,
        verifiers: tuple[Callable[[str], Principal | None], ...] = (),
    ):
        self._tokens: list[tuple[str, str]] = [(r, t) for r, t in (tokens or {}).items() if t]
        self._verifiers = verifiers

    @classmethod
    def of(cls, auth: Authenticator | str) -> Authenticator:
        """A plain string is the single user token of a simple setup."""
        return auth if isinstance(auth, Authenticator) else cls({USER: auth})

    def authenticate(self, given: str) -> Principal | None:
        # every token is compared, so the time taken does not say which matched
        roles = frozenset(role for role, token in self._tokens if secret_equal(given, token))
        if roles:
            return Principal(roles)
        for verify in self._verifiers:
            principal = verify(given)
            if principal is not None:
                return principal
        return None


def fingerprint(secret: str) -> str:
    """A short, one-way name for a secret that may go into a log line."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]
