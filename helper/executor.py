"""Runs assignments on the container runtime, at most `slots` at once, and
hands every result to the outbox."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone

from channel.models import output_digest
from helper.models import Assignment
from helper.runtime import LABEL, RunOutcome, RunSpec
from serving.errors import Busy, Conflict, NotFound

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Executor:
    def __init__(
        self,
        runtime,
        outbox,
        helper_id: str,
        helper_name: str,
        slots: int = 1,
        report: Callable[[str, dict], None] = lambda task_id, event: None,
        clock: Callable[[], datetime] = _now,
        network_mode: str = "bridge",
        boot_id: str = "",
        declared_gpus: bool = False,
    ):
        self.runtime = runtime
        self.outbox = outbox
        self.helper_id = helper_id
        self.helper_name = helper_name
        self.slots = slots
        self.report = report  # best-effort live progress to the seeker
        self.clock = clock
        self.network_mode = network_mode
        self.boot_id = boot_id  # this process: a restarted helper has a new one
        self.declared_gpus = declared_gpus
        self._running: dict[str, dict] = {}
        self._lock = threading.Lock()

    def container_name(self, a: Assignment) -> str:
        return f"seeker-{a.task_id}-{a.attempt}-{self.helper_id[:8]}"

    def submit(self, a: Assignment) -> dict:
        if a.helper_id != self.helper_id:
            raise Conflict(
                "assignment is for another helper",
                f"this helper is {self.helper_id}, the assignment names {a.helper_id}",
            )
        with self._lock:
            if a.key in self._running:
                return self._running[a.key]  # a retried push: already accepted
            if len(self._running) >= self.slots:
                raise Busy("helper is full", f"all {self.slots} slots are in use")
            entry = {
                "task_id": a.task_id,
                "attempt": a.attempt,
                "image": a.image,
                "state": "accepted",
                "accepted_at": self.clock(),
                "container": self.container_name(a),
                "boot_id": self.boot_id,
            }
            self._running[a.key] = entry
        threading.Thread(target=self._run, args=(a,), name=f"run-{a.key}", daemon=True).start()
        return entry

    def cancel(self, key: str) -> dict:
        with self._lock:
            entry = self._running.get(key)
        if entry is None:
            raise NotFound("no such running assignment", key)
        entry["cancel_requested"] = True
        self.runtime.stop(entry["container"])
        return dict(entry)

    def running(self) -> list[dict]:
        with self._lock:
            return [dict(v) for v in self._running.values()]

    def _event(self, a: Assignment, state: str, **fields) -> dict:
        return {"helper_id": self.helper_id, "attempt": a.attempt, "state": state, **fields}

    def _run(self, a: Assignment) -> None:
        try:
            outcome = self.runtime.run(self._spec(a), on_started=lambda: self._started(a))
        except Exception as exc:  # never lose an assignment to a bug or a dead engine
            log.exception("assignment %s crashed", a.key)
            outcome = RunOutcome("error", error=f"helper error: {exc}", finished_at=self.clock())
        result = self._result(a, outcome)
        self.outbox.put("result", result)
        self.outbox.put(
            "event",
            {
                "task_id": a.task_id,
                "event": self._event(
                    a,
                    "finished",
                    status=result["status"],
                    exit_code=result["exit_code"],
                    output_digest=result["output_digest"],
                    error=result["error"],
                ),
            },
        )
        with self._lock:
            self._running.pop(a.key, None)

    def _started(self, a: Assignment) -> None:
        with self._lock:
            if a.key in self._running:
                self._running[a.key]["state"] = "running"
        try:
            self.report(a.task_id, self._event(a, "running"))
        except Exception as exc:  # progress is best effort; the final event is durable
            log.info("could not report start of %s: %s", a.key, exc)

    def _spec(self, a: Assignment) -> RunSpec:
        return RunSpec(
            name=self.container_name(a),
            image=a.image,
            command=a.command,
            env={**a.env, **self._identity_env(a)},
            cpus=a.resources.cpus,
            memory=a.resources.memory,
            gpu_indices=a.gpu_indices,
            declared_gpus=self.declared_gpus,
            timeout=a.timeout,
            labels={LABEL: a.key, "io.seeker.helper": self.helper_id},
            network_mode=self.network_mode,
        )

    def _identity_env(self, a: Assignment) -> dict[str, str]:
        """What the container learns about the run it is part of."""
        env = {
            "SEEKER_TASK_ID": a.task_id,
            "SEEKER_ATTEMPT": str(a.attempt),
            "SEEKER_HELPER_ID": self.helper_id,
            "SEEKER_HELPER_NAME": self.helper_name,
        }
        if a.gpu_indices:
            env["SEEKER_GPU_INDICES"] = ",".join(str(i) for i in a.gpu_indices)
        return env

    def running_keys(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def _result(self, a: Assignment, o: RunOutcome) -> dict:
        return {
            "task_id": a.task_id,
            "helper_id": self.helper_id,
            "helper_name": self.helper_name,
            "attempt": a.attempt,
            "image": a.image,
            "status": o.status,
            "exit_code": o.exit_code,
            "error": o.error,
            "stdout": o.stdout.decode("utf-8", errors="replace"),
            "stderr": o.stderr.decode("utf-8", errors="replace"),
            "stdout_truncated": o.stdout_truncated,
            "stderr_truncated": o.stderr_truncated,
            "output_digest": output_digest(o.stdout),
            "started_at": o.started_at.isoformat() if o.started_at else None,
            "finished_at": (o.finished_at or self.clock()).isoformat(),
            "sent_at": None,  # stamped by the outbox handler at each send
        }
