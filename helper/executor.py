"""Runs assignments on the container runtime, at most `slots` containers at
once, and hands every result (and the full logs of cut streams) to the
outbox. With `prefetch`, that many more assignments may be accepted while
every slot is taken: they wait here, in order, and each starts the moment a
container exits (before that run's logs, removal and reports), so neither
the seeker's next placement nor its push is between two containers."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from channel.models import ResultStatus
from helper.adoption import Adoption
from helper.devices import devices_of, overbooked
from helper.inputs import InputCache, InputUnavailable
from helper.metrics import HelperMetrics
from helper.models import Assignment
from helper.policy import refusal
from helper.runs import RunOutcome
from helper.specs import RunSpecs
from seeker.models import AssignmentState
from serving.errors import Busy, Conflict, Forbidden, NotFound
from serving.later import Later
from serving.threadpool import DaemonThreads

log = logging.getLogger(__name__)
DONE_KEPT = 256  # finished runs a pulling helper lists with what it runs


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Executor(Adoption, RunSpecs):
    def __init__(
        self,
        runtime,
        outbox,
        helper_id: str,
        helper_name: str,
        slots: int = 1,
        prefetch: int = 0,
        report: Callable[[str, dict], None] = lambda task_id, event: None,
        clock: Callable[[], datetime] = _now,
        network_mode: str = "bridge",
        boot_id: str = "",
        declared_gpus: bool = False,
        allow_images: list[str] | None = None,
        allow_mounts: list[str] | None = None,
        spill_root: Path | None = None,
        metrics: HelperMetrics | None = None,
        inputs: InputCache | None = None,
    ):
        self.runtime = runtime
        self.outbox = outbox
        self.helper_id = helper_id
        self.helper_name = helper_name
        self.slots = slots
        self.prefetch = prefetch  # assignments accepted beyond the slots, to start next
        self.report = report  # best-effort live progress to the seeker
        self.clock = clock
        self.network_mode = network_mode
        self.boot_id = boot_id  # this process: a restarted helper has a new one
        self.declared_gpus = declared_gpus
        self.allow_images = list(allow_images or [])
        self.allow_mounts = list(allow_mounts or [])
        self.spill_root = spill_root  # full logs of cut streams wait here for upload
        self.metrics = metrics or HelperMetrics()
        self.inputs = inputs  # fetched before a container starts, kept by digest
        self._running: dict[str, dict] = {}
        self._devices: dict[str, dict[str, float]] = {}  # run -> the GPUs (shares) it holds
        self._active: set[str] = set()  # runs holding a slot: started, container not exited
        self._queue: OrderedDict[str, Assignment] = OrderedDict()  # accepted, waiting for one
        # runs finished lately, newest last: a pulling helper lists them with
        # what it runs, so the seeker does not hand them out again before it
        # has heard that they finished
        self._done: OrderedDict[str, None] = OrderedDict()
        self._later = Later("running-reports")  # "running" reports not sent yet
        # seconds a run's "running" report waits: one that ends sooner is
        # reported by its final event alone (two database writes fewer)
        self.running_report_delay = 0.0
        self._lock = threading.Lock()
        # a run's thread, named run-<key> while it runs: kept for the next run
        self._threads = DaemonThreads("run")

    def submit(self, a: Assignment) -> dict:
        """A pushed assignment: run it (a retried push of a run already under
        way starts nothing). Conflict, Forbidden or Busy if it cannot."""
        self._check(a)
        entry, new = self._claim(
            a.key, a.task_id, a.attempt, a.image, self.container_name(a), devices=devices_of(a)
        )
        if new and self._start(a):
            entry["queued"] = True
        return entry

    def take(self, a: Assignment, acknowledge: Callable[[Assignment], bool]) -> bool:
        """A pulled assignment: claim a slot, acknowledge it to the seeker,
        and run it only if the seeker says this process is to run it (so an
        offer handed out twice, or acknowledged twice, runs once). Returns
        whether it runs; Conflict, Forbidden or Busy if it cannot take it.
        An acknowledgement that fails frees the slot and raises: the offer
        comes again."""
        self._check(a)
        _, new = self._claim(
            a.key, a.task_id, a.attempt, a.image, self.container_name(a), devices=devices_of(a)
        )
        if not new:
            return False  # already running it
        try:
            run = acknowledge(a)
        except BaseException:
            self._release(a.key)
            raise
        if not run:
            log.info("%s: the seeker withdrew it before it was taken", a.key)
            self._release(a.key)
            return False
        self._start(a)
        return True

    def _check(self, a: Assignment) -> None:
        if a.helper_id != self.helper_id:
            raise Conflict(
                "assignment is for another helper",
                f"this helper is {self.helper_id}, the assignment names {a.helper_id}",
            )
        why = refusal(
            a.image, [m.model_dump() for m in a.mounts], self.allow_images, self.allow_mounts
        )
        if why:
            raise Forbidden("refused by this helper's policy", why)

    def _start(self, a: Assignment) -> bool:
        """Run it now if a slot is free, else queue it; returns whether queued."""
        with self._lock:
            queued = len(self._active) >= self.slots
            if queued:
                self._queue[a.key] = a
                self._running[a.key]["queued"] = True
            else:
                self._active.add(a.key)
        if not queued:
            self._thread(a)
        return queued

    def _thread(self, a: Assignment) -> None:
        self._threads.call(a.key, self._run, a)

    def _exited(self, key: str) -> None:
        """`key`'s container exited (or its run ended without one): its slot
        goes to the first queued assignment (a cancelled one left the queue
        when its cancel came: cancel())."""
        starting: list[Assignment] = []
        with self._lock:
            self._active.discard(key)
            while self._queue and len(self._active) < self.slots:
                _, a = self._queue.popitem(last=False)
                self._running[a.key].pop("queued", None)
                self._active.add(a.key)
                starting.append(a)
        for a in starting:
            self._thread(a)

    def _release(self, key: str) -> None:
        with self._lock:
            self._running.pop(key, None)
            self._devices.pop(key, None)
            self._queue.pop(key, None)

    def _claim(
        self,
        key: str,
        task_id: str,
        attempt: int,
        image: str,
        container: str,
        state: AssignmentState = AssignmentState.ACCEPTED,
        devices: dict[str, float] | None = None,
    ) -> tuple[dict, bool]:
        """Take a slot for `key`, and its share of each of `devices` (GPU
        uuid or index -> share: helper/devices.py); returns (a snapshot of
        its entry, whether new)."""
        with self._lock:
            if key in self._running:
                return dict(self._running[key]), False
            if len(self._running) >= self.slots + self.prefetch:
                waiting = f" and {self.prefetch} assignments wait" if self.prefetch else ""
                raise Busy("helper is full", f"all {self.slots} slots are in use{waiting}")
            taken = overbooked(self._devices.values(), devices or {})
            if taken is not None:
                raise Busy(
                    "GPU taken",
                    f"GPU {taken} is held by this helper's runs (two seekers placed on it "
                    "at once?): the seeker places the task again",
                )
            if devices:
                self._devices[key] = devices
            entry = {
                "task_id": task_id,
                "attempt": attempt,
                "image": image,
                "state": state,
                "accepted_at": self.clock(),
                "container": container,
                "boot_id": self.boot_id,
            }
            self._running[key] = entry
            return dict(entry), True

    def cancel(self, key: str) -> dict:
        with self._lock:
            entry = self._running.get(key)
            if entry is None:
                raise NotFound("no such running assignment", key)
            again = entry.get("cancel_requested", False)
            entry["cancel_requested"] = True
            answer = dict(entry)
            waiting = self._queue.pop(key, None)
        if waiting is not None:  # no container yet: it ends here, cancelled
            outcome = RunOutcome(
                ResultStatus.CANCELLED, error="cancelled by user", finished_at=self.clock()
            )
            threading.Thread(
                target=self._deliver,
                args=(waiting.task_id, waiting.attempt, waiting.image, outcome, waiting.receipt),
                name=f"cancel-{key}",
                daemon=True,
            ).start()
            return answer
        if again:
            return answer  # already being stopped
        # stopping takes up to the grace period: answer now, stop on a thread
        threading.Thread(
            target=self.runtime.stop, args=(answer["container"],), name=f"cancel-{key}", daemon=True
        ).start()
        return answer

    def running(self) -> list[dict]:
        """A snapshot of each run, with the GPUs it holds (`gpus`) if any."""
        with self._lock:
            return [
                {**v, "gpus": dict(self._devices[k])} if k in self._devices else dict(v)
                for k, v in self._running.items()
            ]

    def running_keys(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def stopping_keys(self) -> list[str]:
        """The runs being stopped (their containers not gone yet)."""
        with self._lock:
            return [k for k, e in self._running.items() if e.get("cancel_requested")]

    def wait_run(self, key: str, timeout: float) -> bool:
        """Wait until the run of `key` has ended, its result and final event
        in the outbox (True at once if it is not running); False if not
        within `timeout` seconds."""
        return self._threads.wait(key, timeout)

    def done_keys(self) -> list[str]:
        """The runs this process finished lately (at most DONE_KEPT)."""
        with self._lock:
            return list(self._done)

    # --- a run, from start to the outbox ---------------------------------------

    def _run(self, a: Assignment) -> None:
        held: list[str] = []  # the inputs this run pins in the cache
        try:
            mounts = self._fetch_inputs(a, held)
            outcome = self.runtime.run(
                self._spec(a, mounts),
                on_started=lambda: self._progress(a, AssignmentState.RUNNING),
                on_pulling=lambda: self._progress(a, AssignmentState.PULLING),
                on_exited=lambda: self._exited(a.key),
            )
        except InputUnavailable as exc:
            outcome = RunOutcome(ResultStatus.ERROR, error=str(exc), finished_at=self.clock())
        except Exception as exc:  # never lose an assignment to a bug or a dead engine
            log.exception("assignment %s crashed", a.key)
            outcome = RunOutcome(
                ResultStatus.ERROR, error=f"helper error: {exc}", finished_at=self.clock()
            )
        finally:
            if held:
                self.inputs.release(held)
        self._deliver(a.task_id, a.attempt, a.image, outcome, a.receipt)

    def _fetch_inputs(self, a: Assignment, held: list[str]) -> list[dict]:
        """Each input from the cache or the channel, as a read-only mount
        (a step of its own, `fetching`, before the container is made)."""
        if not a.inputs:
            return []
        if self.inputs is None:
            raise InputUnavailable("this helper keeps no input cache: it cannot fetch inputs")
        self._progress(a, AssignmentState.FETCHING)
        mounts = []
        for inp in a.inputs:
            key, path = self.inputs.acquire(inp)
            held.append(key)
            mounts.append({"source": str(path), "target": inp.path, "read_only": True})
        return mounts

    def _deliver(
        self, task_id: str, attempt: int, image: str, outcome: RunOutcome, receipt: str | None
    ) -> None:
        """Queue the artifacts (full logs of cut streams, /output), the result
        and the final event, in that order, durably (one outbox file); then
        free the slot. The channel stores the first two only with the
        seeker's `receipt`."""
        entries = [
            (
                "artifact",
                {
                    "task_id": task_id,
                    "helper_id": self.helper_id,
                    "attempt": attempt,
                    "name": name,
                    "path": str(path),
                    "receipt": receipt,
                },
            )
            for name, path in outcome.artifacts.items()
        ]
        result = self._result(task_id, attempt, image, outcome)
        entries.append(("result", {"result": result, "receipt": receipt}))
        event = {
            "helper_id": self.helper_id,
            "attempt": attempt,
            "state": AssignmentState.FINISHED,
            "status": result["status"],
            "exit_code": result["exit_code"],
            "output_digest": result["output_digest"],
            "error": result["error"],
            "started_at": result["started_at"],
        }
        entries.append(("event", {"task_id": task_id, "event": event}))
        self.outbox.put_all(entries)
        with self._lock:
            key = f"{task_id}.{attempt}"
            self._running.pop(key, None)
            self._devices.pop(key, None)
            self._done[key] = None
            while len(self._done) > DONE_KEPT:
                self._done.popitem(last=False)
        # ended before its start was reported: the final event says both
        self._later.cancel(key)
        self._exited(key)  # if its container never started, or exited unseen
        self.metrics.container_ended(outcome.status, outcome.started_at, outcome.finished_at)

    def _progress(self, a: Assignment, state: AssignmentState) -> None:
        with self._lock:
            if a.key in self._running:
                self._running[a.key]["state"] = state
        if state == AssignmentState.RUNNING and self.running_report_delay > 0:
            # a container that ends within the delay is reported once, finished
            self._later.call(a.key, self.running_report_delay, self._report, a, state)
            return
        self._report(a, state)

    def _report(self, a: Assignment, state: AssignmentState) -> None:
        try:
            self.report(
                a.task_id, {"helper_id": self.helper_id, "attempt": a.attempt, "state": state}
            )
        except Exception as exc:  # progress is best effort; the final event is durable
            log.info("could not report %s of %s: %s", state, a.key, exc)


def remove_spill(path: str) -> None:
    """An uploaded spill file is no longer needed; nor, once empty, its folder."""
    p = Path(path)
    p.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        p.parent.rmdir()  # only once empty
