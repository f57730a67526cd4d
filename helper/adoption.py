"""After a restart: the helper takes over the containers an earlier process
of it started (they carry its labels), follows each to its end and delivers
its result as if it had started it. A part of Executor (helper/executor.py)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from channel.models import ResultStatus
from helper.devices import from_label
from helper.runs import DEVICES_LABEL, LABEL, RECEIPT_LABEL, TIMEOUT_LABEL, RunOutcome, RunSpec
from seeker.models import AssignmentState
from serving.errors import Busy

log = logging.getLogger(__name__)


class Adoption:
    """What Executor does with the containers of an earlier process."""

    def adopt(self, containers: list) -> list[str]:
        """Take over the containers an earlier process of this helper started:
        follow running ones to their end, report finished ones. Returns their keys."""
        keys = []
        for c in containers:
            key = c.labels.get(LABEL, "")
            task_id, _, attempt = key.rpartition(".")
            if not task_id or not attempt.isdigit():
                continue
            image = (c.attrs.get("Config") or {}).get("Image", "")
            devices = from_label(c.labels.get(DEVICES_LABEL), c.name)  # its GPUs stay held
            try:
                self._claim(
                    key,
                    task_id,
                    int(attempt),
                    image,
                    c.name,
                    state=AssignmentState.RUNNING,
                    devices=devices,
                )
            except Busy:
                log.warning("adopting %s beyond the slot count or its GPUs' room", key)
                with self._lock:
                    if devices:
                        self._devices[key] = devices
                    self._running[key] = {
                        "task_id": task_id,
                        "attempt": int(attempt),
                        "image": image,
                        "state": AssignmentState.RUNNING,
                        "container": c.name,
                        "boot_id": self.boot_id,
                    }
            with self._lock:
                self._active.add(key)  # it holds a slot until it ends (_deliver)
            keys.append(key)
            threading.Thread(
                target=self._follow,
                args=(c, task_id, int(attempt), image, c.labels.get(RECEIPT_LABEL)),
                name=f"follow-{key}",
                daemon=True,
            ).start()
        return keys

    def _follow(
        self, container, task_id: str, attempt: int, image: str, receipt: str | None
    ) -> None:
        key = f"{task_id}.{attempt}"
        timeout = container.labels.get(TIMEOUT_LABEL)
        spec = RunSpec(
            name=container.name,
            image=image,
            command=[],
            env={},
            timeout=float(timeout) if timeout else None,
            spill_dir=self.spill_root / key if self.spill_root else None,
        )
        started = _started_at(container)
        log.info(
            "following %s (container %s) left by an earlier helper process", key, container.name
        )
        # the cached inputs it mounts stay while it runs
        held = self.inputs.hold(_mount_sources(container)) if self.inputs else []
        try:
            outcome = self.runtime.follow(container, spec, started)
        except Exception as exc:
            log.exception("following %s failed", key)
            outcome = RunOutcome(
                ResultStatus.ERROR, error=f"helper error: {exc}", finished_at=self.clock()
            )
        finally:
            if held:
                self.inputs.release(held)
        self._deliver(task_id, attempt, image, outcome, receipt)


def _mount_sources(container) -> list[str]:
    return [m.get("Source", "") for m in container.attrs.get("Mounts") or []]


def _started_at(container) -> datetime | None:
    raw = (container.attrs.get("State") or {}).get("StartedAt", "")
    try:
        return datetime.fromisoformat(raw[:26].rstrip("Z") + "+00:00") if raw else None
    except ValueError:
        return None
