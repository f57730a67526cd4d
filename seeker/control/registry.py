"""The seeker's operations on helpers: registrations and heartbeats, the
long polls of pulling helpers, listing and removing helpers. A half of the
Seeker (seeker/control/operations.py), which holds the stores and the
control objects these use."""

from __future__ import annotations

import logging
import random

from seeker.control.credentials import HELPER, require_own
from seeker.helper_models import (
    MAX_POLL_WAIT,
    Heartbeat,
    HelperMode,
    HelperRegistration,
    PollRequest,
)
from seeker.placement.capacity import as_utc, is_online
from seeker.placement.gpus import device_use
from seeker.placement.live import LiveSet
from seeker.store.helpers import offline_in
from serving.errors import Conflict, NotFound
from serving.principals import Principal

log = logging.getLogger(__name__)

# a parked poll waits its wait less up to this share of it, at random
POLL_SPREAD = 0.1


class HelperOperations:
    """What the Seeker does for and about helpers (its attributes: tasks,
    helpers, health, credentials, mailbox, clock, kick, ...)."""

    def register(self, reg: HelperRegistration, caller: Principal | None = None) -> dict:
        """Register or refresh a helper, and issue its credential when it is
        new: at a registration with the join token (or with no caller:
        in-process use), and when a helper process registers with its own
        credential for the first time (a restart: the credential rotates).
        The heartbeats of one process keep theirs. The join token cannot take
        over a helper id that has a credential and was heard from within
        --liveness: that helper registers with its own credential."""
        heartbeat = caller is not None and caller.has(HELPER)
        require_own(caller if heartbeat else None, reg.helper_id, "register itself")
        body = reg.model_dump(mode="json")
        running = body.pop("running")  # only to tell which work survived a restart
        previous = self.helpers.get(reg.helper_id)
        if previous is None:
            self.health.helper_joined()
        suggested = self.health.heartbeat_interval()
        pulling = reg.mode == HelperMode.PULL  # its polls are its heartbeats (see poll)
        pace = max(suggested, self.poll_wait_now()) if pulling else suggested
        body["heartbeat"] = beats_every(body.get("heartbeat"), pace)
        if heartbeat:
            restarted = previous is None or previous.get("boot_id") != reg.boot_id
            nonce = self.credentials.new_nonce() if restarted else None
        else:
            self._refuse_takeover(previous)
            nonce = self.credentials.new_nonce()
        helper = self.helpers.register(body, self.clock(), nonce=nonce)
        self.health.registered(previous, {**body, "running": running})
        stop = self.health.reconcile(reg.helper_id, reg.name, running)
        self.health.beats.forget(reg.helper_id)  # its next beat is checked
        self.room()  # of use to a task that waits (work it lost kicked a pass itself)
        answer = dict(helper, running=len(running), stop=stop, heartbeat=suggested)
        if nonce is not None:
            answer["credential"] = self.credentials.mint(reg.helper_id, nonce)
        return answer

    def heartbeat(self, helper_id: str, beat: Heartbeat, caller: Principal | None = None) -> dict:
        """A registered helper is alive and nothing but what it runs changed:
        a good contact (written with the others of the second, in one
        write), and the runs it is to stop. 404 for a helper the seeker does
        not know (purged: it registers again), 409 for another process of
        it (a restart registers)."""
        require_own(caller, helper_id, "beat for itself")
        helper = self.helpers.summary(helper_id)
        if helper is None:
            raise NotFound("no such helper", f"{helper_id}: register (POST /api/v1/helpers)")
        if helper.get("boot_id") != beat.boot_id:
            raise Conflict(
                f"helper {helper['name']} registered another process",
                "a restarted helper registers (POST /api/v1/helpers) before it beats",
            )
        suggested = self.health.heartbeat_interval()
        every = beats_every(beat.heartbeat, suggested)
        pulling = helper.get("mode") == HelperMode.PULL.value  # its polls set it
        changed = every if every != helper.get("heartbeat") and not pulling else None
        self.health.contact_ok(helper_id, heartbeat=changed)  # written with the contact
        stop = self.health.reconcile_beat(helper_id, helper["name"], beat.running)
        return {"heartbeat": suggested, "stop": stop}

    def _refuse_takeover(self, previous: dict | None) -> None:
        if previous is None or self.helpers.auth_of(previous["helper_id"]) is None:
            return
        heard = as_utc(previous.get("last_seen"))
        if heard is None or self.clock() - heard >= self.health.liveness:
            return  # silent: its host may have lost its credential file
        raise Conflict(
            f"helper {previous['helper_id']} ({previous['name']}) is registered and online",
            "a running helper registers with its own credential; a helper that lost it is "
            f"let in once the seeker has not heard from it for "
            f"{self.health.liveness.total_seconds():g} s, "
            f"or after 'seeker helpers --remove {previous['helper_id']}'",
        )

    def helper_list(
        self, limit: int | None = None, after: str | None = None, online: bool | None = None
    ) -> dict:
        """A page of helpers in the order of their names, each with how many
        assignments it runs, whether it is online (heard from within its
        liveness deadline and, pulling, not gone) and how much of each GPU
        its assignments hold (`gpu_use`): {"helpers", "next" (the name to
        pass as `after` for the next page, None on the last), "total" and
        "offline" (of the whole fleet)}. `limit` None: every helper;
        `online`: only those online (True) or offline (False).

        The page is chosen from every helper's name and liveness fields
        (HelperStore.roster), then only its own helpers and their live
        assignments are read whole: a page of a fleet of thousands does not
        read, build and send thousands of documents."""
        now, liveness = self.clock(), self.health.liveness
        roster = self.helpers.roster()
        offline = offline_in(roster, now, liveness)
        chosen = sorted(
            (d["name"], d["_id"])
            for d in roster
            if (online is None or (d["_id"] not in offline) == online)
            and (after is None or d["name"] > after)
        )
        more = limit is not None and len(chosen) > limit
        page = chosen[:limit]
        ids = [helper_id for _, helper_id in page]
        helpers = [h for h in self._helpers_named(page, roster) if h is not None]
        return {
            "helpers": self._listed(helpers, ids),
            "next": chosen[limit - 1][0] if more else None,
            "total": len(roster),
            "offline": len(offline),
        }

    def helper(self, key: str) -> dict:
        """One helper as the list shows it, by its id or else its name."""
        found = self.helpers.get(key) or self.helpers.named(key)
        if found is None:
            raise NotFound("no such helper", f"{key} is neither a helper's id nor a helper's name")
        return self._listed([found], [found["helper_id"]])[0]

    def _listed(self, helpers: list[dict], ids: list[str]) -> list[dict]:
        """`helpers` as the list shows them: with how many assignments each
        runs, whether it is online and its GPUs' use (`ids`: theirs)."""
        now, liveness = self.clock(), self.health.liveness
        live = LiveSet(self.tasks.live_assignment_docs(helper_ids=ids) if ids else [])
        rows = []
        for h in helpers:
            held = live.reservations(h["helper_id"])
            gpus = (h.get("resources") or {}).get("gpus", [])
            rows.append(
                dict(
                    h,
                    running=len(held),
                    online=is_online(h, now, liveness),
                    gpu_use=device_use(gpus, held),
                )
            )
        return rows

    def _helpers_named(self, page: list[tuple[str, str]], roster: list[dict]) -> list:
        """The documents of a page's helpers ((name, id), in order; None for
        one removed meanwhile): their names' range when few others lie
        within it, else by id."""
        if not page:
            return []
        first, last = page[0][0], page[-1][0]
        within = sum(1 for d in roster if first <= d["name"] <= last)
        if within <= 2 * len(page):
            docs = self.helpers.named_between(first, last)
        else:  # a filtered page, spread over the fleet
            docs = self.helpers.of([helper_id for _, helper_id in page])
        return [docs.get(helper_id) for _, helper_id in page]

    def remove_helper(self, helper_id: str) -> None:
        if not self.helpers.remove(helper_id):
            raise NotFound("no such helper", helper_id)

    def poll(
        self,
        helper_id: str,
        request: PollRequest,
        caller: Principal | None = None,
        new_connection: bool = True,
    ) -> dict:
        """What a pulling helper is to do now: {"assignments", "stop"} (both
        empty: nothing yet, and the caller may wait for something)."""
        require_own(caller, helper_id, "poll for its own work")
        helper = self.helpers.summary(helper_id)
        if helper is None:
            raise NotFound("no such helper", f"{helper_id}: register first (POST /api/v1/helpers)")
        if helper.get("mode") != HelperMode.PULL.value or self.mailbox is None:
            raise Conflict(
                f"helper {helper['name']} is registered in push mode",
                "the seeker pushes its work to its URL; register with mode 'pull' to poll",
            )
        now = self.clock()
        if new_connection:  # after a drop: back (on this seeker or another)
            self.helpers.poll_connected(helper_id, now)
        self._polled[helper_id] = now
        # a pulling helper's polls are its heartbeats: the next comes within
        # the wait, or its own heartbeat's (its liveness deadline follows)
        every = beats_every(request.heartbeat, min(request.wait, self.poll_wait_now()))
        changed = every if every > 0 and every != helper.get("heartbeat") else None
        self.health.contact_ok(helper_id, heartbeat=changed)
        return self.mailbox.collect(
            helper, request.boot_id, request.running, request.done, fresh=new_connection
        )

    def poll_wait_now(self) -> float:
        """How long a poll waits for work at most: --poll-wait, or a
        heartbeat's interval when the fleet is so large that that is longer
        (5,000 helpers: 100 s): a fleet's polls, like its heartbeats, come
        at most HEARTBEATS_PER_SECOND a second (seeker/control/health.py)."""
        return min(MAX_POLL_WAIT, max(self.poll_wait, self.health.heartbeat_interval()))

    def parked_wait(self, asked: float, draw=random.random) -> float:
        """How long a poll with nothing to do waits here: its wait (the
        helper's, at most the seeker's) less up to a tenth, at random. Polls
        that began together (a fleet back after a seeker restart) drift
        apart by up to a tenth of a wait each round, instead of ending
        together for ever."""
        return min(asked, self.poll_wait_now()) * (1 - POLL_SPREAD * draw())

    def poll_intervals(self) -> dict:
        """What a poll's answer says of the intervals: how long the next
        poll may wait, and the heartbeat's (a full registration comes every
        60 of them)."""
        return {"wait": self.poll_wait_now(), "heartbeat": self.health.heartbeat_interval()}

    def poll_dropped(self, helper_id: str) -> None:
        """A pulling helper's waiting poll connection closed: if it does not
        poll again within the grace, it died, and its work runs elsewhere."""
        dropped_at = self.clock()
        log.info("helper %s: its poll connection dropped", helper_id)

        def check() -> None:
            polled = self._polled.get(helper_id)
            back = self.parked(helper_id) > 0 or (polled is not None and polled > dropped_at)
            lost = self.health.poll_dropped(helper_id, dropped_at, still_here=back)
            if lost:
                self.kick()

        self.later(self.poll_grace.total_seconds(), check)


def beats_every(limit: float | None, suggested: float) -> float:
    """How many seconds apart a helper beats (or, pulling, polls): as the
    seeker asks, or as its --heartbeat says if that is more often (what
    liveness and the prober expect of it)."""
    return min(limit, suggested) if limit else suggested
