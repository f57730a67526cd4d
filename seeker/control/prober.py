"""The periodic probe: ask every helper for its status, refresh its
resources, and count a failed contact when it does not answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from seeker.control.health import HelperHealth
from seeker.placement.capacity import as_utc
from seeker.store.helpers import HelperStore
from serving.http import ApiError, Unreachable

log = logging.getLogger(__name__)

Status = Callable[[dict], dict]  # helper document -> its GET /api/v1/status


# seconds past its own interval a helper's heartbeat is counted missing
# (the store's query reads by the same bound)
GRACE = 5.0


class Prober:
    def __init__(
        self,
        helpers: HelperStore,
        health: HelperHealth,
        status: Status,
        clock: Callable[[], datetime],
        kick: Callable[[], None] = lambda: None,
        parallel: int = 16,
    ):
        self.helpers = helpers
        self.health = health
        self.status = status
        self.clock = clock
        self.kick = kick
        self.parallel = parallel

    def probe_all(self) -> dict[str, bool]:
        """Probe the helpers that fell silent (missed a heartbeat) once;
        returns helper name -> answered. Pulling helpers accept no
        connections: they are never probed."""
        now = self.clock()
        quiet = self.helpers.pushed_silent_since(now, self.health.min_heartbeat, GRACE)
        helpers = [h for h in quiet if silent(h, now, self.health.min_heartbeat)]
        if not helpers:
            return {}
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(helpers))) as pool:
            answers = list(pool.map(self._ask, helpers))
        outcome = {}
        for helper, (status, error) in zip(helpers, answers, strict=True):
            outcome[helper["name"]] = status is not None
            if status is None:
                self.health.contact_failed(
                    helper["helper_id"], helper["name"], f"probe failed: {error}"
                )
                continue
            self.helpers.refresh(helper["helper_id"], status.get("resources"), self.clock())
        if any(outcome.values()):
            self.kick()  # fresh capacity may let pending tasks run
        return outcome

    def _ask(self, helper: dict) -> tuple[dict | None, str | None]:
        try:
            return self.status(helper), None
        except (Unreachable, ApiError) as exc:
            return None, str(exc)
        except Exception as exc:  # e.g. a reply that is not JSON: a failed contact too
            return None, f"{type(exc).__name__}: {exc}"


def silent(helper: dict, now: datetime, min_heartbeat: float) -> bool:
    """Not heard from for longer than its heartbeat interval and GRACE: a
    heartbeat is missing. A helper heard from lately is not probed."""
    seen = as_utc(helper.get("last_seen"))
    beat = helper.get("heartbeat") or min_heartbeat
    return seen is None or now - seen > timedelta(seconds=beat + GRACE)
